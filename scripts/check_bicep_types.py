#!/usr/bin/env python3
"""Offline type check of Bicep resources against Azure's own type definitions.

There is no Bicep compiler here, so this does a subset of what `az bicep build` checks, with
the type definitions the compiler itself uses (Azure/bicep-types-az, `generated/` folder; see
that folder's README.md for the format). The Bicep files are parsed with tree-sitter and the
tree-sitter-bicep grammar (as scripts/check_bicep_syntax.py does).

What it checks, for every `resource` declaration of every .bicep file (modules included),
whether plain, conditional (`= if (...) {...}`), a loop (`= [for ...: {...}]`) or nested in
a parent's body (type relative to the parent's, API version inherited when omitted):
  - the `type@apiVersion` exists in the definitions (otherwise it lists the versions that do);
  - every property written in the body exists at its path (nested objects, array items,
    discriminated shapes chosen by their discriminator, e.g. a `name`- or `kind`-dependent
    body), and is writable (not ReadOnly);
  - literal values have the declared kind (string, int, bool, object, array), are one of the
    allowed string literals, and keep to declared string lengths and integer ranges;
  - every Required property is set in each object literal;
  - `parent:` names a resource of the parent type, and a name's `/` segments fit the type.
`existing` resources are checked for type and API version only. `parent`, `scope` and
`dependsOn` at the top of a body are Bicep keywords, not properties, and are accepted.

What it cannot check: values whose type is not known offline. Literals, declared parameter
types, variables (followed to their value), both branches of `?:` and `??`, interpolated
strings, the `id`/`name` of resources, `tenant().tenantId` and the like, and the results of a
few functions (`guid`, `empty`, ...) are checked; other expressions (other member accesses,
most function calls, loop variables) and the contents of `object`/`array` parameters are
accepted where a value is expected, and counted: the closing line says how many values could
not be checked. Not checked at all: string patterns, DeployTimeConstant, scopes, `dependsOn`,
modules' parameters and outputs, and what Azure accepts beyond the types (quotas, regions).

Usage: scripts/check_bicep_types.py [--types DIR] [--list-unchecked] [DIR_OR_FILE ...]
(default: infra/).
The definitions are read from --types, else $AZURE_TYPES_DIR, else infra/types/ in this
repository (the subset of types and API versions the project uses; see its README.md).
"""

import argparse
import collections
import difflib
import json
import os
import pathlib
import sys

import tree_sitter
import tree_sitter_bicep

from check_bicep_syntax import bicep_files

REQUIRED, READ_ONLY = 1, 2
BICEP_KEYWORDS = {"parent", "scope", "dependsOn"}
DEFAULT_TYPES = pathlib.Path(__file__).resolve().parent.parent / "infra" / "types"

# Bicep functions whose result kind is known whatever their arguments.
FUNCTION_KINDS = {
    "string": ["base64", "dataUri", "format", "guid", "newGuid", "padLeft", "replace", "resourceId",
               "string", "subscriptionResourceId", "substring", "tenantResourceId", "toLower",
               "toUpper", "trim", "uniqueString", "uri", "utcNow", "extensionResourceId",
               "managementGroupResourceId", "loadTextContent", "loadFileAsBase64"],
    "int": ["int", "length", "indexOf", "lastIndexOf"],
    "bool": ["bool", "contains", "empty", "endsWith", "startsWith"],
}
FUNCTION_KIND = {name: kind for kind, names in FUNCTION_KINDS.items() for name in names}
COMPARISONS = {"==", "!=", "<", "<=", ">", ">=", "=~", "!~", "&&", "||"}
ARITHMETIC = {"+", "-", "*", "/", "%"}
RESOURCE_STRING_MEMBERS = {"id", "name", "type", "apiVersion"}
# String members of the deployment's scope functions, e.g. tenant().tenantId.
SCOPE_STRING_MEMBERS = {
    "tenant": {"tenantId", "displayName", "countryCode"},
    "subscription": {"id", "subscriptionId", "tenantId", "displayName"},
    "resourceGroup": {"id", "name", "type", "location", "managedBy"},
    "deployment": {"name"},
}
ESCAPES = {"\\\\": "\\", "\\'": "'", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}

Problem = collections.namedtuple("Problem", "path line resource prop message")


class Static(collections.namedtuple("Static", "kind literal")):
    """What is known offline about a value: its kind ('string', 'int', 'bool', 'object',
    'array', 'null', or None when unknown) and, for literals, the value (else UNKNOWN)."""


UNKNOWN = object()


# ---------------------------------------------------------------------------------------------
# Type definitions
# ---------------------------------------------------------------------------------------------


def link(types):
    """Replaces every {"$ref": "#/N"} in one types.json array by the entry it points at."""

    def resolve(value):
        if isinstance(value, dict):
            if set(value) == {"$ref"}:
                return types[int(value["$ref"].split("/")[-1])]
            for key, item in value.items():
                value[key] = resolve(item)
        elif isinstance(value, list):
            value[:] = [resolve(item) for item in value]
        return value

    for entry in types:
        resolve(entry)
    return types


class TypeLibrary:
    """The definitions under `<root>/<provider>/<namespace>/<api-version>/types.json`, loaded
    per namespace when first needed."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.files = collections.defaultdict(list)  # namespace (lower case) -> types.json paths
        for path in sorted(self.root.glob("*/*/*/types.json")):
            self.files[path.parent.parent.name.lower()].append(path)
        self.loaded = {}  # namespace -> {type@version (lower case): ResourceType}

    def resources(self, namespace):
        namespace = namespace.lower()
        if namespace not in self.loaded:
            found = {}
            for path in self.files.get(namespace, []):
                for entry in link(json.loads(path.read_text())):
                    if entry["$type"] == "ResourceType":
                        found[entry["name"].lower()] = entry
            self.loaded[namespace] = found
        return self.loaded[namespace]

    def resource(self, type_name, version):
        """The ResourceType of `type_name@version`, or None."""
        return self.resources(type_name.split("/")[0]).get(f"{type_name}@{version}".lower())

    def versions(self, type_name):
        """The API versions the definitions have for a type, oldest first."""
        prefix = type_name.lower() + "@"
        names = self.resources(type_name.split("/")[0])
        return sorted(name[len(prefix):] for name in names if name.startswith(prefix))


def flatten(type_):
    """The members of a union, nested unions included; any other type alone."""
    if type_["$type"] != "UnionType":
        return [type_]
    return [member for element in type_["elements"] for member in flatten(element)]


def describe(type_):
    """A short human name of a type, e.g. "'Enabled' | 'Disabled'" or "object"."""
    kind = type_["$type"]
    if kind == "StringLiteralType":
        return repr(type_["value"])
    if kind == "UnionType":
        names = [describe(member) for member in flatten(type_)]
        return " | ".join(names[:8] + (["..."] if len(names) > 8 else []))
    if kind == "ArrayType":
        return describe(type_["itemType"]) + "[]"
    return {"StringType": "string", "IntegerType": "int", "BooleanType": "bool",
            "ObjectType": "object", "DiscriminatedObjectType": "object",
            "AnyType": "any"}.get(kind, kind)


def kind_of_type(type_):
    """The value kind a type accepts ('string', ...), None when several or any."""
    kinds = {{"StringType": "string", "StringLiteralType": "string", "IntegerType": "int",
              "BooleanType": "bool", "ObjectType": "object", "DiscriminatedObjectType": "object",
              "ArrayType": "array"}.get(member["$type"]) for member in flatten(type_)}
    return kinds.pop() if len(kinds) == 1 else None


def object_shape(type_, discriminator_value):
    """(properties, additionalProperties) of an ObjectType, or of the branch of a
    DiscriminatedObjectType that `discriminator_value` selects (None: every branch merged)."""
    if type_["$type"] == "ObjectType":
        return type_.get("properties", {}), type_.get("additionalProperties")
    properties = dict(type_.get("baseProperties", {}))
    branches = type_["elements"]
    chosen = [branches[discriminator_value]] if discriminator_value in branches else branches.values()
    for branch in chosen:
        for name, prop in branch.get("properties", {}).items():
            properties.setdefault(name, prop)
    return properties, None


# ---------------------------------------------------------------------------------------------
# Bicep syntax helpers
# ---------------------------------------------------------------------------------------------


def named(node):
    """The named children of a node, comments left out (tree-sitter keeps them, anywhere)."""
    return [child for child in node.named_children if child.type != "comment"]


def text(node):
    return node.text.decode("utf-8")


def string_value(node):
    """The value of a string node without interpolation, else UNKNOWN."""
    if text(node).startswith("'''"):
        return text(node)[3:-3]
    parts = []
    for child in named(node):
        if child.type == "string_content":
            parts.append(text(child))
        elif child.type == "escape_sequence":
            parts.append(ESCAPES.get(text(child), text(child)))
        else:
            return UNKNOWN
    return "".join(parts)


def property_key(prop):
    """The key of an object_property (UNKNOWN when interpolated), or None for a nested
    resource declaration."""
    key = named(prop)[0]
    if key.type == "resource_declaration":
        return None
    return string_value(key) if key.type == "string" else text(key)


def properties(obj):
    """(key, key node, value node) of each property of an object node, nested resources left
    out."""
    for prop in named(obj):
        if prop.type == "object_property" and property_key(prop) is not None:
            yield property_key(prop), named(prop)[0], named(prop)[-1]


def nested_resources(obj):
    for prop in named(obj):
        if prop.type == "object_property" and named(prop)[0].type == "resource_declaration":
            yield named(prop)[0]


def unwrap_body(node):
    """The object of a resource body, looking through `if (...)` and `[for ...: ...]`."""
    while node.type in ("for_statement", "if_statement"):
        node = node.child_by_field_name("body") or named(node)[-1]
    return node


def loop_variables(node):
    """The names a `for` node declares."""
    names = set()
    init = node.child_by_field_name("initializer")
    if init is not None:
        names.add(text(init))
    for child in named(node):
        if child.type == "for_loop_parameters":
            names.update(text(c) for c in named(child))
    return names


def is_local(identifier):
    """Whether an identifier names a loop variable of an enclosing `for`."""
    node = identifier.parent
    while node is not None:
        if node.type == "for_statement" and text(identifier) in loop_variables(node):
            return True
        node = node.parent
    return False


def function_name(call):
    function = call.child_by_field_name("function")
    if function.type == "member_expression":  # az.guid(), sys.string()
        function = function.child_by_field_name("property")
    return text(function)


# ---------------------------------------------------------------------------------------------
# Declarations of one file
# ---------------------------------------------------------------------------------------------


class Resource(collections.namedtuple("Resource", "symbol node type_name version parent existing")):
    """A resource declaration: its symbol, full type, API version (None when missing) and the
    enclosing resource of a nested declaration."""

    @property
    def full_type(self):
        return f"{self.type_name}@{self.version}"


def resource_declarations(nodes, parent=None):
    """Every resource declaration among `nodes`, each followed by those nested in its body."""
    for node in nodes:
        if node.type != "resource_declaration":
            continue
        declared = string_value(named(node)[1])
        if declared is UNKNOWN:  # interpolated: not Bicep, and no such type
            declared = text(named(node)[1])
        type_name, _, version = declared.partition("@")
        if parent is not None:
            type_name = f"{parent.type_name}/{type_name}"
            version = version or parent.version
        existing = any(child.type == "existing" for child in node.children)
        resource = Resource(text(named(node)[0]), node, type_name, version or None,
                            parent, existing)
        yield resource
        body = unwrap_body(named(node)[-1])
        if body.type == "object":
            yield from resource_declarations(nested_resources(body), resource)


class Declarations:
    """The parameters, variables and resources of one file, by symbol."""

    def __init__(self, root):
        self.params, self.variables = {}, {}
        for node in named(root):
            if node.type == "parameter_declaration":
                self.params[text(named(node)[0])] = param_kind(node)
            elif node.type == "variable_declaration":
                self.variables[text(named(node)[0])] = named(node)[-1]
        self.resources = list(resource_declarations(named(root)))
        self.by_symbol = {r.symbol: r for r in self.resources}


def param_kind(node):
    """The kind of a parameter's declared type, None when not a plain one."""
    type_node = node.child_by_field_name("type") or next(
        (c for c in named(node) if c.type == "type"), None)
    if type_node is None or not named(type_node):
        return None
    inner = named(type_node)[0]
    if inner.type == "primitive_type":
        return text(inner)
    if inner.type == "array_type":
        return "array"
    if inner.type == "union_type" and all(c.type == "string" for c in named(inner)):
        return "string"
    return None


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


class Values:
    """Static knowledge of expressions in one file."""

    def __init__(self, declarations):
        self.declarations = declarations

    def alternatives(self, node, depth=0):
        """The expressions a value may come from: both branches of `?:` and `??`, a variable's
        value, the inside of parentheses; the node itself otherwise."""
        if depth > 20:
            return [node]
        inner = None
        if node.type == "parenthesized_expression":
            inner = named(node)
        elif node.type == "ternary_expression":
            inner = [node.child_by_field_name("consequence"), node.child_by_field_name("alternative")]
        elif node.type == "binary_expression" and text(node.child_by_field_name("operator")) == "??":
            inner = [node.child_by_field_name("left"), node.child_by_field_name("right")]
        elif node.type == "identifier" and not is_local(node) and text(node) in self.declarations.variables:
            inner = [self.declarations.variables[text(node)]]
        if inner is None:
            return [node]
        return [found for child in inner for found in self.alternatives(child, depth + 1)]

    def static(self, node):
        """The Static of a node that `alternatives` leaves as it is."""
        kind = node.type
        if kind == "string":
            return Static("string", string_value(node))
        if kind == "number":
            return Static("int", int(text(node)))
        if kind == "boolean":
            return Static("bool", text(node) == "true")
        if kind == "null":
            return Static("null", None)
        if kind in ("object", "array", "for_statement"):
            return Static("object" if kind == "object" else "array", UNKNOWN)
        return Static(self.expression_kind(node), UNKNOWN)

    def expression_kind(self, node):
        kind = node.type
        if kind == "identifier" and not is_local(node):
            return self.declarations.params.get(text(node))
        if kind == "call_expression":
            return FUNCTION_KIND.get(function_name(node))
        if kind == "unary_expression":
            return "bool" if text(node.child_by_field_name("operator")) == "!" else "int"
        if kind == "binary_expression":
            operator = text(node.child_by_field_name("operator"))
            return "bool" if operator in COMPARISONS else "int" if operator in ARITHMETIC else None
        if kind == "member_expression":
            return self.member_kind(node)
        return None

    def member_kind(self, node):
        """`symbol.id` and the like of a resource declared in this file, and `tenant().tenantId`
        and the like: strings."""
        target = node.child_by_field_name("object")
        member = text(node.child_by_field_name("property"))
        if target.type == "identifier" and text(target) in self.declarations.by_symbol:
            known = RESOURCE_STRING_MEMBERS
        elif target.type == "call_expression":
            known = SCOPE_STRING_MEMBERS.get(function_name(target), ())
        else:
            known = ()
        return "string" if member in known else None


# ---------------------------------------------------------------------------------------------
# The check
# ---------------------------------------------------------------------------------------------


class Report:
    """Problems found, the number of values checked, and the values that could not be (as
    Problems too, with what they are)."""

    def __init__(self):
        self.problems, self.checked, self.unchecked = [], 0, []

    def add(self, other):
        self.problems += other.problems
        self.checked += other.checked
        self.unchecked += other.unchecked


class Where(collections.namedtuple("Where", "resource path")):
    """The resource and property path a value is at, e.g. `properties.siteConfig`."""

    def child(self, key):
        return Where(self.resource, f"{self.path}.{key}" if self.path else key)

    def item(self, index):
        return Where(self.resource, f"{self.path}[{index}]")


class FileChecker:
    """Checks the resources of one Bicep file."""

    def __init__(self, path, root, library):
        self.path = path
        self.library = library
        self.declarations = Declarations(root)
        self.values = Values(self.declarations)

    def problem(self, report, node, where, message):
        report.problems.append(self.located(node, where, message))

    def not_checkable(self, report, node, where, why):
        report.unchecked.append(self.located(node, where, f"{why}: `{text(node)[:60]}`"))

    def located(self, node, where, message):
        return Problem(self.path, node.start_point[0] + 1, where.resource, where.path, message)

    # -- resources --------------------------------------------------------------------------

    def check(self):
        report = Report()
        for resource in self.declarations.resources:
            report.add(self.check_resource(resource))
        return report

    def check_resource(self, resource):
        report = Report()
        where = Where(f"{resource.symbol} ({resource.full_type})", "")
        definition = self.resource_type(resource, report, where)
        body = unwrap_body(named(resource.node)[-1])
        if body.type != "object" and not resource.existing:
            self.not_checkable(report, body, where, "body not an object literal")
        if definition is None or resource.existing or body.type != "object":
            return report
        self.check_parent(resource, body, report, where)
        self.check_name(resource, body, report, where)
        self.check_object(body, definition["body"], where, report, keywords=BICEP_KEYWORDS)
        return report

    def resource_type(self, resource, report, where):
        """The ResourceType of a declaration, or None after reporting why there is none."""
        node = named(resource.node)[1]
        if resource.version is None:
            self.problem(report, node, where, "no API version (`type@apiVersion`)")
            return None
        definition = self.library.resource(resource.type_name, resource.version)
        if definition is None:
            versions = self.library.versions(resource.type_name)
            known = f"versions there: {', '.join(versions)}" if versions else "no such type there"
            self.problem(report, node, where,
                         f"{resource.full_type} is not in the type definitions ({known})")
        return definition

    def check_parent(self, resource, body, report, where):
        """`parent: symbol` must name a resource of the type this one is a child of."""
        for key, key_node, value in properties(body):
            if key != "parent" or value.type != "identifier":
                continue
            parent = self.declarations.by_symbol.get(text(value))
            expected = resource.type_name.rsplit("/", 1)[0]
            if parent is not None and parent.type_name.lower() != expected.lower():
                self.problem(report, key_node, where.child("parent"),
                             f"parent {parent.symbol} is a {parent.type_name}, "
                             f"a {resource.type_name} needs a {expected}")

    def check_name(self, resource, body, report, where):
        """A top-level child resource without `parent` is named `parent/child`; a nested one,
        or one with `parent`, is named without a slash."""
        names = [(key_node, value) for key, key_node, value in properties(body) if key == "name"]
        if not names or names[0][1].type != "string":
            return
        key_node, value = names[0]
        has_parent = resource.parent is not None or any(k == "parent" for k, _, _ in properties(body))
        expected = 0 if has_parent else resource.type_name.count("/") - 1
        literal_parts = "".join(text(c) for c in named(value) if c.type == "string_content")
        slashes = literal_parts.count("/")
        interpolated = any(c.type == "interpolation" for c in named(value))
        if slashes > expected or (slashes < expected and not interpolated):
            self.problem(report, key_node, where.child("name"),
                         f"a name with {expected} '/' expected for {resource.type_name}"
                         f"{' with a parent' if has_parent else ''}, found {slashes}")

    # -- values -----------------------------------------------------------------------------

    def check_value(self, node, type_, where, report):
        """Checks one property value (every alternative of it) against a type."""
        for alternative in self.values.alternatives(node):
            self.check_alternative(alternative, type_, where, report)

    def check_alternative(self, node, type_, where, report):
        if type_["$type"] == "UnionType":
            self.check_union(node, type_, where, report)
        elif type_["$type"] == "AnyType":
            report.checked += 1
        elif node.type == "object" and kind_of_type(type_) == "object":
            self.check_object(node, type_, where, report)
        elif node.type in ("array", "for_statement") and type_["$type"] == "ArrayType":
            self.check_array(node, type_, where, report)
        else:
            self.check_scalar(node, type_, where, report)

    def check_union(self, node, type_, where, report):
        """A value fits a union when it fits one member; otherwise the problems of the member
        it fits best are reported (an object), or the union is named (anything else)."""
        if self.values.static(node).kind is None:
            self.not_checkable(report, node, where, f"type unknown offline, {describe(type_)} expected")
            return
        attempts = []
        for member in flatten(type_):
            attempt = Report()
            self.check_alternative(node, member, where, attempt)
            if not attempt.problems:
                report.add(attempt)
                return
            attempts.append(attempt)
        objects = [a for a, m in zip(attempts, flatten(type_)) if kind_of_type(m) == "object"]
        if node.type == "object" and objects:
            report.add(min(objects, key=lambda a: len(a.problems)))
        else:
            self.problem(report, node, where,
                         f"expected {describe(type_)}, found {self.show(node)}")

    def check_scalar(self, node, type_, where, report):
        """A value that is not an object or array literal checked against its type."""
        static = self.values.static(node)
        expected = kind_of_type(type_)
        if static.kind is None:
            self.not_checkable(report, node, where, f"type unknown offline, {describe(type_)} expected")
        elif static.kind == "null":
            report.checked += 1
        elif static.kind != expected:
            self.problem(report, node, where, f"expected {describe(type_)}, found {self.show(node)}")
        elif static.literal is UNKNOWN and type_["$type"] in (
                "StringLiteralType", "ObjectType", "DiscriminatedObjectType", "ArrayType"):
            self.not_checkable(report, node, where, f"{static.kind} whose content is not known offline")
        else:
            report.checked += 1
            message = literal_problem(static.literal, type_) if static.literal is not UNKNOWN else None
            if message:
                self.problem(report, node, where, f"{message}, found {self.show(node)}")

    def show(self, node):
        static = self.values.static(node)
        if static.literal is not UNKNOWN and static.kind != "null":
            return f"{static.kind} {static.literal!r}"
        return f"{static.kind or 'an expression'} `{text(node)[:60]}`"

    def check_array(self, node, type_, where, report):
        item_type = type_["itemType"]
        if node.type == "for_statement":
            body = unwrap_body(node)
            self.check_value(body, item_type, where.item("*"), report)
            return
        items = named(node)
        limit = type_.get("maxLength")
        if limit is not None and len(items) > limit:
            self.problem(report, node, where, f"at most {limit} items allowed, found {len(items)}")
        for index, item in enumerate(items):
            self.check_value(item, item_type, where.item(index), report)

    def check_object(self, node, type_, where, report, keywords=()):
        """An object literal: known, writable properties with fitting values; required ones
        present."""
        report.checked += 1
        props, additional = object_shape(type_, self.discriminator_value(node, type_, where, report))
        skipped = {type_.get("discriminator")}  # checked by discriminator_value
        seen = set(skipped)
        for key, key_node, value in properties(node):
            if key in skipped or (key in keywords and key not in props):
                continue
            if key is UNKNOWN:  # an interpolated key: only additionalProperties can tell
                self.check_unknown_key(value, additional, where.child("${...}"), report)
                continue
            seen.add(key)
            self.check_property(key, key_node, value, (type_, props, additional), where.child(key),
                                report)
        for name, prop in props.items():
            if prop["flags"] & REQUIRED and not prop["flags"] & READ_ONLY and name not in seen:
                self.problem(report, node, where.child(name), "required property missing")

    def check_unknown_key(self, value, additional, where, report):
        if additional is None:
            self.not_checkable(report, value, where, "interpolated property name")
        else:
            self.check_value(value, additional, where, report)

    def check_property(self, key, key_node, value, shape, where, report):
        """One property of an object literal; `shape` is (type, properties, additionalProperties)."""
        type_, props, additional = shape
        prop = props.get(key)
        if prop is None and additional is not None:
            self.check_value(value, additional, where, report)
        elif prop is None:
            self.problem(report, key_node, where, unknown_property_message(key, props, type_))
        elif prop["flags"] & READ_ONLY:
            self.problem(report, key_node, where, "read-only property set")
        else:
            self.check_value(value, prop["type"], where, report)

    def discriminator_value(self, node, type_, where, report):
        """The discriminator's literal value in an object of a DiscriminatedObjectType (None
        when the type has none, the value is not known, or it selects no branch)."""
        if type_["$type"] != "DiscriminatedObjectType":
            return None
        name = type_["discriminator"]
        values = [v for key, _, v in properties(node) if key == name]
        if not values:
            self.problem(report, node, where.child(name), "required discriminator missing "
                         f"(one of {', '.join(map(repr, type_['elements']))})")
            return None
        static = self.values.static(values[0])
        if static.kind is None or (static.kind == "string" and static.literal is UNKNOWN):
            self.not_checkable(report, values[0], where.child(name), "discriminator not a literal")
            return None
        if static.literal not in type_["elements"]:
            self.problem(report, values[0], where.child(name),
                         f"expected one of {', '.join(map(repr, type_['elements']))}, "
                         f"found {self.show(values[0])}")
        return static.literal


def literal_problem(literal, type_):
    """Why a literal of the right kind does not fit its type, or None."""
    kind = type_["$type"]
    if kind == "StringLiteralType" and literal != type_["value"]:
        return f"expected {describe(type_)}"
    if kind == "StringType":
        if len(literal) < type_.get("minLength", 0):
            return f"at least {type_['minLength']} characters expected"
        if len(literal) > type_.get("maxLength", len(literal)):
            return f"at most {type_['maxLength']} characters expected"
    if kind == "IntegerType":
        low, high = type_.get("minValue"), type_.get("maxValue")
        if (low is not None and literal < low) or (high is not None and literal > high):
            return f"expected an int in [{low}, {high}]"
    return None


def unknown_property_message(key, props, type_):
    """Says a property is unknown, with the likely intended name and the discriminated branches
    that have it, or else the allowed names."""
    writable = [name for name, prop in props.items() if not prop["flags"] & READ_ONLY]
    close = [n for n in writable if n.lower() == key.lower()] or difflib.get_close_matches(key, writable, 3)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    if type_["$type"] == "DiscriminatedObjectType":
        owners = [value for value, branch in type_["elements"].items()
                  if key in branch.get("properties", {})]
        if owners:
            hint += f"; only with {type_['discriminator']} {' or '.join(map(repr, owners))}"
    if close:
        return f"unknown property{hint}"
    allowed = sorted(writable)
    listed = ", ".join(allowed[:15] + (["..."] if len(allowed) > 15 else [])) or "none"
    return f"unknown property{hint} (allowed: {listed})"


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def check_files(files, library):
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))
    report, resources = Report(), 0
    for path in files:
        checker = FileChecker(path, parser.parse(path.read_bytes()).root_node, library)
        resources += len(checker.declarations.resources)
        report.add(checker.check())
    return report, resources


def print_located(items, prefix=""):
    for p in sorted(items, key=lambda p: (str(p.path), p.line)):
        print(f"{prefix}{p.path}:{p.line}: resource {p.resource}: {p.prop or '(type)'}: {p.message}")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", default=os.environ.get("AZURE_TYPES_DIR", DEFAULT_TYPES),
                        help="the type definitions (default: $AZURE_TYPES_DIR, infra/types)")
    parser.add_argument("--list-unchecked", action="store_true",
                        help="also list the values that could not be checked offline")
    parser.add_argument("paths", nargs="*", help="Bicep files or directories (default: infra)")
    args = parser.parse_args(argv[1:])
    library = TypeLibrary(args.types)
    if not library.files:
        print(f"check_bicep_types: no type definitions under {args.types}", file=sys.stderr)
        return 1
    files = list(bicep_files(args.paths))
    if not files:
        print("check_bicep_types: no .bicep files found", file=sys.stderr)
        return 1
    report, resources = check_files(files, library)
    print_located(report.problems)
    if args.list_unchecked:
        print_located(report.unchecked, prefix="not checked: ")
    print(f"check_bicep_types: {len(files)} files, {resources} resources, {report.checked} values "
          f"checked, {len(report.unchecked)} not checkable offline, {len(report.problems)} problems")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
