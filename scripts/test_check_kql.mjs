// Tests of scripts/check_kql.mjs with the real Kusto language service and the real queries:
// every query passes; a column misspelled in a copy of each query fails, naming the column;
// the workbook's former unbracketed `kind` fails; wrong tables, unsupported Resource Graph
// operators, unknown workbook parameters and Bicep escapes are handled; the command line fails
// with the query's file and name.
//
// The Rust queries come from $KQL_QUERIES (a JSON file scripts/check-infra writes from
// `cargo run --example kql_queries`), else from running that example here.
// Run: node --test scripts/test_check_kql.mjs   (scripts/check-infra runs it)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  bicepQueries, checkAll, checkQuery, infraQueries, language, loadSchemas, main, substitute,
  workbookParameters, workbookQueries,
} from "./check_kql.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SCHEMAS = loadSchemas();

function rustQueries() {
  const text = process.env.KQL_QUERIES
    ? fs.readFileSync(process.env.KQL_QUERIES, "utf8")
    : execFileSync("cargo", ["run", "--quiet", "--example", "kql_queries"], { cwd: ROOT, encoding: "utf8" });
  return JSON.parse(text);
}

const INFRA = infraQueries(path.join(ROOT, "infra"));
const RUST = rustQueries();
const ALL = [...INFRA, ...RUST];

const errors = (query, schema) => checkQuery(query, SCHEMAS[schema]).filter((p) => p.severity === "Error");

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "check-kql-test-"));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The first reference of each column in a query, by the language service's own binding
 * (so never a word inside a string literal): [{name, start}]. Table columns and columns the
 * query itself makes (`extend registry = ...`) alike. */
function columnReferences(query, schema) {
  const K = language();
  const code = K.KustoCode.ParseAndAnalyze(query, SCHEMAS[schema].globals);
  const found = new Map();
  code.Syntax.WalkNodes((node) => {
    if (!Bridge.is(node, K.Syntax.NameReference)) return;
    if (Bridge.is(node.ReferencedSymbol, K.Symbols.ColumnSymbol) && !found.has(node.SimpleName)) {
      // A bracketed name (['Tags deleted']) is planted inside its brackets.
      const start = node.TextStart + (query.startsWith("[", node.TextStart) ? 2 : 0);
      assert.equal(query.slice(start, start + node.SimpleName.length), node.SimpleName);
      found.set(node.SimpleName, { name: node.SimpleName, start });
    }
  });
  return [...found.values()];
}

test("the project's queries are all found: 17 in infra/, 6 from the Rust code", () => {
  assert.equal(INFRA.length, 17, INFRA.map((q) => q.source).join("\n"));
  assert.equal(INFRA.filter((q) => q.source.includes("alert.bicep")).length, 1);
  assert.deepEqual(RUST.map((q) => q.schema).sort(),
    ["registryEvents", "registryEvents", "registryEvents", "resourceGraph", "resourceGraph", "resourceGraph"]);
});

test("every real query passes against its schema", () => {
  const lines = [];
  const { errors: count } = checkAll(ALL, SCHEMAS, (line) => lines.push(line));
  assert.equal(count, 0, lines.join("\n"));
});

test("a misspelled column planted in a copy of each query fails, naming it", () => {
  let planted = 0;
  for (const q of ALL) {
    const columns = columnReferences(q.query, q.schema);
    assert.ok(columns.length > 0, `${q.source}: no column reference found`);
    for (const column of columns) {
      const text = `${q.query.slice(0, column.start)}${column.name}x${q.query.slice(column.start + column.name.length)}`;
      const found = errors(text, q.schema);
      assert.ok(found.some((p) => p.code === "KS142" && p.message.includes(`'${column.name}x'`)),
        `${q.source}: ${column.name}x not reported: ${JSON.stringify(found)}`);
      planted++;
    }
  }
  assert.ok(planted > 3 * ALL.length, `only ${planted} columns planted`);
});

test("the workbook's former unbracketed kind is rejected, the bracketed one passes", () => {
  const before = "customMetrics\n| where name == 'purge.deleted'\n| extend kind = tostring(customDimensions['kind'])\n"
    + "| summarize Deleted = sum(valueSum) by kind, bin(timestamp, 1h)";
  const found = errors(before, "appinsights");
  assert.equal(found[0].code, "KS228");
  assert.match(found[0].message, /The name 'kind' needs to be bracketed as \['kind'\]/);
  assert.deepEqual([found[0].line, found[0].column], [3, 10]);
  assert.deepEqual(errors(before.replaceAll("kind =", "['kind'] =").replace("by kind", "by ['kind']"), "appinsights"), []);
});

test("a table of another schema is unknown; columns keep their types", () => {
  const pulls = RUST.find((q) => q.schema === "registryEvents").query;
  assert.ok(errors(pulls, "appinsights").some((p) => p.message.includes("ContainerRegistryRepositoryEvents")));
  assert.ok(errors("requests | summarize sum(resultCode)", "appinsights").length > 0, "sum of a string column");
  assert.deepEqual(errors("requests | where success == false | summarize sum(duration) by operation_Id", "appinsights"), []);
});

test("Resource Graph: an operator outside its subset of KQL fails", () => {
  const found = errors("Resources | serialize | project id, kind, properties", "resourceGraph");
  assert.deepEqual(found.map((p) => p.code), ["UNSUPPORTED"]);
  assert.match(found[0].message, /operator 'serialize'/);
  assert.deepEqual(errors("Resources | where ['kind'] =~ 'app' | mv-expand tags | project id, properties", "resourceGraph"), []);
});

test("workbook parameters get representative values; an unknown one is an error", (t) => {
  const workbook = JSON.parse(fs.readFileSync(path.join(ROOT, "infra", "workbook.json"), "utf8"));
  const values = workbookParameters(workbook);
  assert.equal(values["TimeRange:grain"], "1h");
  assert.equal(values.Mode, "all");
  assert.match(values.Registry, /^'[^']+','[^']+'$/);
  assert.deepEqual(substitute("x {Nope} {Mode}", values), { text: "x {Nope} all", unknown: ["{Nope}"] });

  const dir = tempDir(t);
  const file = path.join(dir, "workbook.json");
  fs.writeFileSync(file, JSON.stringify({ items: [{ type: 3, name: "bad", content: {
    query: "requests | summarize count() by bin(timestamp, {Grain})", resourceType: "microsoft.insights/components" } }] }));
  const lines = [];
  const result = checkAll(workbookQueries(file), SCHEMAS, (line) => lines.push(line));
  assert.equal(result.errors >= 1, true);
  assert.match(lines.join("\n"), /item bad .*cannot substitute \{Grain\}/);
});

test("Bicep query literals are unescaped and located", (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "alert.bicep");
  fs.writeFileSync(file, "resource r 'x@1' = {\n  properties: {\n    criteria: {\n"
    + "      query: 'requests | where name == \\'purge\\' | project timestamp, resultCod'\n    }\n  }\n}\n");
  const [q] = bicepQueries(file);
  assert.equal(q.query, "requests | where name == 'purge' | project timestamp, resultCod");
  assert.match(q.source, /alert\.bicep:4: query$/);
  assert.ok(errors(q.query, "appinsights").some((p) => p.message.includes("'resultCod'")));
});

test("the command line fails with the query's file and name, passes on the real infra", (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, "workbook.json"), JSON.stringify({ items: [{ type: 3, name: "runs", content: {
    title: "Runs", query: "requests | where nmae == 'purge'", resourceType: "microsoft.insights/components" } }] }));
  const queries = path.join(dir, "rust.json");
  fs.writeFileSync(queries, JSON.stringify([{ source: "in_use.rs: IN_USE_QUERY", schema: "resourceGraph",
    query: "Resources | project id, tpye" }]));
  const lines = [];
  const log = console.log;
  console.log = (line) => lines.push(line);
  let status;
  try {
    status = main(["node", "check_kql.mjs", "--infra", dir, queries]);
  } finally {
    console.log = log;
  }
  assert.equal(status, 1);
  const out = lines.join("\n");
  assert.match(out, /workbook\.json: item runs \(Runs\): 1:18: Error KS142: The name 'nmae'/);
  assert.match(out, /in_use\.rs: IN_USE_QUERY: 1:25: Error KS142: The name 'tpye'/);
  assert.match(lines.at(-1), /^check_kql: 2 queries \(1 appinsights, 1 resourceGraph\), 2 errors$/);

  lines.length = 0;
  console.log = (line) => lines.push(line);
  try {
    status = main(["node", "check_kql.mjs", "--infra", path.join(ROOT, "infra")]);
  } finally {
    console.log = log;
  }
  assert.equal(status, 0, lines.join("\n"));
});

test("a schema with a malformed column is refused", (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, "schemas.json");
  fs.writeFileSync(file, JSON.stringify({ s: { tables: { T: "(a:string, b:nosuchtype)" } } }));
  assert.throws(() => loadSchemas(file), /table T: bad column " b:nosuchtype"/);
});
