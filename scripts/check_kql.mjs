#!/usr/bin/env node
// Parses and semantically checks every KQL query the project ships or sends, with Microsoft's
// Kusto language service for JavaScript (npm @kusto/language-service-next, the parser behind
// the portal's query editor), against the schemas the queries run on (scripts/kql/schemas.json):
//   - the workbook (infra/workbook.json, items and parameter queries) and the scheduled query
//     rules' queries in infra/**/*.bicep, against Application Insights' tables (`appinsights`);
//   - query lists given as JSON files ([{source, schema, query}], `-` for standard input): the
//     pull-log and Resource Graph queries the Rust code builds (`cargo run --example
//     kql_queries`), against `registryEvents` and `resourceGraph`.
// Every diagnostic the language service reports (unknown names, wrong types, syntax) is printed
// as `source: line:col: Severity CODE: message` with the offending line; an Error fails the
// check. Resource Graph runs a subset of KQL: a tabular operator outside that subset is an
// error too.
//
// Workbook parameters are substituted before parsing with representative values, derived from
// the parameter definitions: a time range's `{P:grain}` is `1h`, `{P:start}`/`{P:end}` are
// datetimes; a drop-down is its first value (quoted and joined with its delimiter when
// multi-select, two values then). A parameter the workbook does not define is an error.
//
// Usage: node scripts/check_kql.mjs [--infra DIR] [QUERIES.json | -] ...
//   (default: --infra infra when no argument is given)
// The language service is read from $KUSTO_LANGUAGE_DIR, else
// target/kusto/node_modules/@kusto/language-service-next (scripts/check-infra installs it).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const SCHEMAS_FILE = path.join(ROOT, "scripts", "kql", "schemas.json");

let kusto = null;

/** The Kusto.Language namespace, loaded once (Bridge.NET scripts that set globals). */
export function language() {
  if (kusto) return kusto;
  const dir = process.env.KUSTO_LANGUAGE_DIR
    || path.join(ROOT, "target", "kusto", "node_modules", "@kusto", "language-service-next");
  if (!fs.existsSync(path.join(dir, "Kusto.Language.Bridge.min.js"))) {
    throw new Error(`no Kusto language service in ${dir} (scripts/check-infra installs it; `
      + "or set KUSTO_LANGUAGE_DIR)");
  }
  const require = createRequire(import.meta.url);
  require(path.join(dir, "bridge.min.js"));
  require(path.join(dir, "Kusto.Language.Bridge.min.js"));
  kusto = globalThis.Kusto.Language;
  return kusto;
}

/** The schemas of scripts/kql/schemas.json as {name: {globals, operators}}. */
export function loadSchemas(file = SCHEMAS_FILE) {
  const K = language();
  const S = K.Symbols;
  const spec = JSON.parse(fs.readFileSync(file, "utf8"));
  const schemas = {};
  for (const [name, def] of Object.entries(spec)) {
    // Columns are built one by one: the language service's own schema-string parser
    // (TableSymbol.From) silently drops a column named like a keyword (`kind`, `properties`).
    const tables = Object.entries(def.tables).map(([table, schema]) => {
      const columns = schema.replace(/^\(|\)$/g, "").split(",").map((column) => {
        const [columnName, typeName, extra] = column.split(":").map((part) => part.trim());
        const type = typeName && S.ScalarTypes.GetSymbol(typeName);
        if (!columnName || !type || extra !== undefined) {
          throw new Error(`${file}: schema ${name}, table ${table}: bad column ${JSON.stringify(column)}`);
        }
        return new S.ColumnSymbol(columnName, type, null, null, null, null);
      });
      return new S.TableSymbol.$ctor4(table, columns);
    });
    const database = new S.DatabaseSymbol.$ctor1(name, tables, false);
    schemas[name] = {
      globals: K.GlobalState.Default.WithDatabase(database),
      operators: def.operators ? new Set(def.operators) : null,
      tables: Object.keys(def.tables),
    };
  }
  return schemas;
}

/** A path as printed: relative to the repository when inside it. */
function shown(file) {
  const relative = path.relative(ROOT, path.resolve(file));
  return relative.startsWith("..") ? file : relative;
}

function lineAndColumn(text, offset) {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, column: offset - before.lastIndexOf("\n") };
}

/**
 * The problems of one query against one schema: [{severity, code, message, line, column,
 * excerpt}]. Diagnostics of the language service, plus tabular operators outside the schema's
 * operator subset (Resource Graph).
 */
export function checkQuery(query, schema) {
  const K = language();
  const code = K.KustoCode.ParseAndAnalyze(query, schema.globals);
  const problems = [];
  const add = (severity, codeName, message, start) => {
    const { line, column } = lineAndColumn(query, start);
    problems.push({ severity, code: codeName, message, line, column,
      excerpt: query.split("\n")[line - 1] });
  };
  const diagnostics = code.GetDiagnostics();
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    add(String(d.Severity), d.Code, d.Message, d.Start);
  }
  if (schema.operators) {
    code.Syntax.WalkNodes((node) => {
      if (!Bridge.is(node, K.Syntax.QueryOperator)) return;
      const keyword = node.GetFirstToken().Text;
      if (!schema.operators.has(keyword)) {
        add("Error", "UNSUPPORTED", `operator '${keyword}' is not in this service's subset of KQL `
          + `(${[...schema.operators].join(", ")})`, node.TextStart);
      }
    });
  }
  return problems;
}

/** Representative values of a workbook's parameters: {"Name" | "Name:format": text}. */
export function workbookParameters(workbook) {
  const values = {};
  const visit = (items) => {
    for (const item of items || []) {
      const content = item.content || {};
      for (const p of content.parameters || []) {
        if (p.type === 4) { // time range
          values[p.name] = "ago(30d)";
          values[`${p.name}:grain`] = "1h";
          values[`${p.name}:start`] = "datetime(2026-01-01T00:00:00Z)";
          values[`${p.name}:end`] = "datetime(2026-01-31T00:00:00Z)";
        } else {
          let choices = [];
          if (p.jsonData) choices = JSON.parse(p.jsonData).map((c) => c.value);
          if (choices.length === 0) choices = ["myregistry.azurecr.io", "other.azurecr.io"];
          if (p.multiSelect) {
            const quote = p.quote ?? "'";
            values[p.name] = choices.slice(0, 2).map((c) => `${quote}${c}${quote}`)
              .join(p.delimiter ?? ",");
          } else {
            values[p.name] = String(p.value ?? choices[0]);
          }
        }
      }
      visit(content.items);
    }
  };
  visit(workbook.items);
  return values;
}

/** A workbook query with its `{Parameter}` references replaced; unknown ones are errors. */
export function substitute(query, values) {
  const unknown = [];
  const text = query.replace(/\{([A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z]+)?)\}/g, (all, name) => {
    if (name in values) return values[name];
    unknown.push(all);
    return all;
  });
  return { text, unknown };
}

/** The workbook's queries: [{source, schema, query, unknown}] (items and parameter queries). */
export function workbookQueries(file) {
  const workbook = JSON.parse(fs.readFileSync(file, "utf8"));
  const values = workbookParameters(workbook);
  const found = [];
  const add = (where, query, resourceType) => {
    const schema = resourceType === "microsoft.insights/components" ? "appinsights"
      : `unknown resourceType ${resourceType}`;
    const { text, unknown } = substitute(query, values);
    found.push({ source: `${shown(file)}: ${where}`, schema, query: text, unknown });
  };
  const visit = (items) => {
    for (const item of items || []) {
      const content = item.content || {};
      if (typeof content.query === "string") {
        add(`item ${item.name} (${content.title ?? "untitled"})`, content.query, content.resourceType);
      }
      for (const p of content.parameters || []) {
        if (typeof p.query === "string") add(`parameter ${p.name}`, p.query, p.resourceType);
      }
      visit(content.items);
    }
  };
  visit(workbook.items);
  return found;
}

const BICEP_ESCAPES = { "\\\\": "\\", "\\'": "'", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$" };

/** The `query: '...'` values of a Bicep file (scheduled query rules): [{source, schema, query}]. */
export function bicepQueries(file) {
  const text = fs.readFileSync(file, "utf8");
  const found = [];
  const pattern = /^\s*query:\s*'((?:[^'\\\n]|\\.)*)'/gm;
  for (let m; (m = pattern.exec(text)); ) {
    const line = text.slice(0, m.index).split("\n").length + (m[0].startsWith("\n") ? 1 : 0);
    const raw = m[1];
    const entry = { source: `${shown(file)}:${line}: query`, schema: "appinsights",
      query: raw.replace(/\\[\\'nrt$]/g, (e) => BICEP_ESCAPES[e]), unknown: [] };
    if (/(^|[^\\])\$\{/.test(raw)) entry.unknown.push("an interpolation (${...}) known only at deployment");
    found.push(entry);
  }
  return found;
}

/** Every query of an infra directory: the workbook(s) and the Bicep files. */
export function infraQueries(dir) {
  const found = [];
  const walk = (d) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory()) { if (entry.name !== "types") walk(full); }
      else if (entry.name.endsWith(".bicep")) found.push(...bicepQueries(full));
      else if (entry.name.startsWith("workbook") && entry.name.endsWith(".json")) found.push(...workbookQueries(full));
    }
  };
  walk(dir);
  return found;
}

/** Checks queries; prints each problem; returns {checked, errors, bySchema}. */
export function checkAll(queries, schemas, out = console.log) {
  let errors = 0;
  const bySchema = {};
  for (const q of queries) {
    const schema = schemas[q.schema];
    bySchema[q.schema] = (bySchema[q.schema] ?? 0) + 1;
    if (!schema) {
      out(`${q.source}: Error: no schema ${q.schema} (known: ${Object.keys(schemas).join(", ")})`);
      errors++;
      continue;
    }
    for (const u of q.unknown ?? []) {
      out(`${q.source}: Error: cannot substitute ${u}`);
      errors++;
    }
    for (const p of checkQuery(q.query, schema)) {
      out(`${q.source}: ${p.line}:${p.column}: ${p.severity} ${p.code}: ${p.message}\n    ${p.excerpt.trim()}`);
      if (p.severity === "Error") errors++;
    }
  }
  return { checked: queries.length, errors, bySchema };
}

export function main(argv) {
  const args = argv.slice(2);
  const queries = [];
  if (args.length === 0) args.push("--infra", path.join(ROOT, "infra"));
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--infra") {
      queries.push(...infraQueries(args[++i]));
    } else {
      const text = fs.readFileSync(args[i] === "-" ? 0 : args[i], "utf8");
      const list = JSON.parse(text);
      if (!Array.isArray(list)) throw new Error(`${args[i]}: not a JSON array of queries`);
      queries.push(...list);
    }
  }
  const { checked, errors, bySchema } = checkAll(queries, loadSchemas());
  const counts = Object.entries(bySchema).map(([s, n]) => `${n} ${s}`).join(", ");
  console.log(`check_kql: ${checked} queries (${counts}), ${errors} errors`);
  return errors || checked === 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv);
  } catch (e) {
    console.error(`check_kql: ${e.message}`);
    process.exitCode = 2;
  }
}
