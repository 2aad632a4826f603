#!/usr/bin/env python3
"""Tests of scripts/check_bicep_types.py on small Bicep inputs, against the real type
definitions (infra/types, or $AZURE_TYPES_DIR): each kind of problem is rejected with
its file, line, resource and property path; valid input passes, every property of it
misspelled fails; the real infra/ passes.

Needs tree-sitter and tree-sitter-bicep (scripts/check-infra runs it in target/infra-venv).
The last line of the output is `N passed, N failed`.

Run: target/infra-venv/bin/python scripts/test_bicep_types.py
"""

import contextlib
import io
import os
import pathlib
import re
import shutil
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import check_bicep_types as checker  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRARY = checker.TypeLibrary(os.environ.get("AZURE_TYPES_DIR", checker.DEFAULT_TYPES))

# Valid: a nested resource with an inherited API version, a conditional resource, a loop, a
# `parent:` child, a discriminated body (name), variables, parameters and a ternary.
VALID = """
param location string = resourceGroup().location
param names array = ['a', 'b']
param useFtp bool = false

var vaultSku = {
  family: 'A'
  name: 'standard'
}

resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  name: 'kv-test'
  location: location
  tags: {
    owner: 'tests'
  }
  properties: {
    tenantId: tenant().tenantId
    sku: vaultSku
    enableRbacAuthorization: true
    softDeleteRetentionInDays: 7
    networkAcls: {
      defaultAction: 'Deny'
      ipRules: [
        {
          value: '10.0.0.0/24'
        }
      ]
    }
  }

  resource secret 'secrets' = {
    name: 'webhook'
    properties: {
      value: 'not really secret'
      contentType: 'text/plain'
    }
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = if (useFtp) {
  name: 'site-test'
  location: location
  kind: 'functionapp,linux'
  properties: {
    httpsOnly: true
    siteConfig: {
      ftpsState: useFtp ? 'FtpsOnly' : 'Disabled'
      appSettings: [for n in names: {
        name: n
        value: 'x'
      }]
    }
  }
}

resource ftp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource readers 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for n in names: {
  name: guid(vault.id, n)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', n)
    principalId: n
    principalType: 'ServicePrincipal'
  }
}]

resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' existing = {
  name: 'someregistry'
}
"""

VAULT_HEAD = """
resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
  name: 'kv'
  location: 'westeurope'
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
"""


class TypeCheckTest(unittest.TestCase):
    def setUp(self):
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="bicep-types-test-"))
        self.addCleanup(shutil.rmtree, self.tmp)

    def check(self, source, name="main.bicep"):
        """Checks one Bicep text; returns (the file, its report)."""
        path = self.tmp / name
        path.write_text(textwrap.dedent(source))
        report, _ = checker.check_files([path], LIBRARY)
        return path, report

    def line_of(self, path, marker):
        lines = path.read_text().splitlines()
        return next(i for i, line in enumerate(lines, 1) if marker in line)

    def assert_one_problem(self, source, marker, resource, prop, message):
        """The source has exactly one problem: on the line containing `marker`, in `resource`
        (symbol and type), at property path `prop`, its message containing `message`. The
        printed form names file, line, resource and path."""
        path, report = self.check(source)
        printed = [self.printed(p) for p in report.problems]
        self.assertEqual(len(report.problems), 1, printed)
        problem = report.problems[0]
        self.assertEqual((problem.path, problem.line), (path, self.line_of(path, marker)), printed)
        self.assertEqual(problem.resource, resource)
        self.assertEqual(problem.prop, prop)
        self.assertIn(message, problem.message)
        self.assertTrue(printed[0].startswith(
            f"{path}:{problem.line}: resource {resource}: {prop or '(type)'}: "), printed[0])

    def printed(self, problem):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            checker.print_located([problem])
        return out.getvalue().strip()

    def test_valid_input_passes(self):
        _, report = self.check(VALID)
        self.assertEqual([self.printed(p) for p in report.problems], [])
        self.assertGreater(report.checked, 30)
        # n (loop variable) in name/principalId/roleDefinitionId... is not known offline
        self.assertTrue(report.unchecked)

    def test_every_misspelled_property_of_the_valid_input_is_rejected(self):
        source = textwrap.dedent(VALID)
        keys = set(re.findall(r"^ +(\w+):", source, re.MULTILINE)) - {"owner"}  # tags: any name
        self.assertGreater(len(keys), 20)
        missed = []
        for key in sorted(keys):
            _, report = self.check(re.sub(rf"^( +){key}:", rf"\1{key}Xx:", source, flags=re.MULTILINE))
            if not report.problems:
                missed.append(key)
        self.assertEqual(missed, [])

    def test_misspelled_property(self):
        self.assert_one_problem(VAULT_HEAD + """
            enableRbacAuthorisation: true
          }
        }
        """, "enableRbacAuthorisation", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.enableRbacAuthorisation", "did you mean enableRbacAuthorization?")

    def test_read_only_property_set(self):
        self.assert_one_problem(VAULT_HEAD + """
            hsmPoolResourceId: 'x'
          }
        }
        """, "hsmPoolResourceId", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.hsmPoolResourceId", "read-only property set")

    def test_wrong_literal_type(self):
        self.assert_one_problem(VAULT_HEAD + """
            softDeleteRetentionInDays: '90'
          }
        }
        """, "softDeleteRetentionInDays", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.softDeleteRetentionInDays", "expected int, found string '90'")

    def test_parameter_of_the_wrong_type(self):
        self.assert_one_problem("param days string\n" + VAULT_HEAD + """
            softDeleteRetentionInDays: days
          }
        }
        """, "softDeleteRetentionInDays", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.softDeleteRetentionInDays", "expected int, found string `days`")

    def test_string_literal_not_allowed(self):
        self.assert_one_problem(VAULT_HEAD.replace("'standard'", "'basic'") + """
          }
        }
        """, "'basic'", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.sku.name", "expected 'standard' | 'premium', found string 'basic'")

    def test_both_branches_of_a_ternary_are_checked(self):
        self.assert_one_problem("param premium bool\n" + VAULT_HEAD.replace(
            "'standard'", "premium ? 'premium' : 'gold'") + """
          }
        }
        """, "'gold'", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.sku.name", "found string 'gold'")

    def test_a_variable_is_checked_where_it_is_used(self):
        self.assert_one_problem("""
        var sku = {
          family: 'A'
          name: 'gold'
        }

        resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
          name: 'kv'
          location: 'westeurope'
          properties: {
            tenantId: tenant().tenantId
            sku: sku
          }
        }
        """, "name: 'gold'", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.sku.name", "found string 'gold'")

    def test_values_unknown_offline_are_counted_not_rejected(self):
        _, report = self.check("param settings object\n" + VAULT_HEAD + """
            softDeleteRetentionInDays: settings.days
          }
        }
        """)
        self.assertEqual(report.problems, [])
        self.assertEqual([p.prop for p in report.unchecked], ["properties.softDeleteRetentionInDays"])

    def test_comments_are_not_values(self):
        self.assert_one_problem("""
        resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = { // the vault
          name: 'kv'
          location: /* not global */ 'westeurope'
          properties: {
            tenantId: tenant().tenantId // the deployment's
            sku: {
              family: 'A'
              name: 'standard'
            }
            networkAcls: {
              ipRules: [
                // first
                {
                  value: '10.0.0.0/24'
                }
                /* second */
                {
                  value: 10
                }
              ]
            }
          }
        }
        """, "value: 10", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.networkAcls.ipRules[1].value", "expected string, found int 10")

    def test_unknown_api_version(self):
        self.assert_one_problem("""
        resource vault 'Microsoft.KeyVault/vaults@2024-12-01' = {
          name: 'kv'
        }
        """, "resource vault", "vault (Microsoft.KeyVault/vaults@2024-12-01)", "",
            "is not in the type definitions (versions there: 2024-11-01")

    def test_missing_required_property(self):
        self.assert_one_problem("""
        resource vault 'Microsoft.KeyVault/vaults@2024-11-01' = {
          name: 'kv'
          location: 'westeurope'
          properties: {
            sku: {
              family: 'A'
              name: 'standard'
            }
          }
        }
        """, "properties: {", "vault (Microsoft.KeyVault/vaults@2024-11-01)",
            "properties.tenantId", "required property missing")

    def test_property_of_the_wrong_discriminated_branch(self):
        self.assert_one_problem("""
        resource alert 'Microsoft.Insights/metricAlerts@2026-01-01' = {
          name: 'cpu'
          location: 'global'
          properties: {
            severity: 2
            enabled: true
            scopes: []
            evaluationFrequency: 'PT5M'
            criteria: {
              'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
              webTestId: 'x'
            }
          }
        }
        """, "webTestId", "alert (Microsoft.Insights/metricAlerts@2026-01-01)",
            "properties.criteria.webTestId",
            "only with odata.type 'Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria'")

    def test_discriminator_not_allowed(self):
        self.assert_one_problem("""
        resource site 'Microsoft.Web/sites@2024-04-01' existing = {
          name: 'site'

          resource policy 'basicPublishingCredentialsPolicies' = {
            name: 'sftp'
          }
        }
        """, "'sftp'",
            "policy (Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01)",
            "name", "expected one of 'ftp', 'scm'")

    def test_nested_resource_type_and_version_come_from_the_parent(self):
        self.assert_one_problem(VAULT_HEAD + """
          }

          resource secret 'secrets' = {
            name: 'webhook'
            properties: {
              valu: 'x'
            }
          }
        }
        """, "valu:", "secret (Microsoft.KeyVault/vaults/secrets@2024-11-01)",
            "properties.valu", "did you mean value?")

    def test_nested_resource_with_its_own_api_version(self):
        self.assert_one_problem(VAULT_HEAD + """
          }

          resource secret 'secrets@2099-01-01' = {
            name: 'webhook'
          }
        }
        """, "'secrets@2099-01-01'", "secret (Microsoft.KeyVault/vaults/secrets@2099-01-01)",
            "", "is not in the type definitions")

    def test_conditional_resource_body_is_checked(self):
        self.assert_one_problem("""
        resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = if (true) {
          name: 'id'
          location: true
        }
        """, "location:", "id (Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31)",
            "location", "expected string, found bool True")

    def test_loop_body_and_loop_items_are_checked(self):
        self.assert_one_problem("""
        resource ids 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = [for i in range(0, 2): {
          name: 'id${i}'
          location: 'westeurope'
          tags: [
            'x'
          ]
        }]
        """, "tags:", "ids (Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31)",
            "tags", "expected object, found array")

    def test_parent_of_the_wrong_type(self):
        self.assert_one_problem("""
        resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' existing = {
          name: 'id'
        }

        resource policy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
          parent: id
          name: 'ftp'
        }
        """, "parent: id",
            "policy (Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01)",
            "parent", "a Microsoft.Web/sites/basicPublishingCredentialsPolicies needs a Microsoft.Web/sites")

    def test_child_name_needs_its_parent_segment(self):
        self.assert_one_problem("""
        resource policy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
          name: 'ftp'
        }
        """, "name: 'ftp'",
            "policy (Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01)",
            "name", "a name with 1 '/' expected")

    def test_existing_resource_is_checked_for_type_only(self):
        _, report = self.check("""
        resource registry 'Microsoft.ContainerRegistry/registries@2025-04-01' existing = {
          name: 'r'
          whatever: 1
        }
        """)
        self.assertEqual(report.problems, [])
        path, report = self.check("""
        resource registry 'Microsoft.ContainerRegistry/registries@2019-05-01' existing = {
          name: 'r'
        }
        """)
        self.assertEqual([p.line for p in report.problems], [self.line_of(path, "2019-05-01")])


class CommandLineTest(unittest.TestCase):
    def run_main(self, *args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = checker.main(["check_bicep_types.py", *args])
        return status, out.getvalue()

    def test_the_real_infra_passes(self):
        status, out = self.run_main(str(ROOT / "infra"))
        self.assertEqual(status, 0, out)
        self.assertRegex(out.splitlines()[-1],
                         r"^check_bicep_types: \d+ files, \d+ resources, \d+ values checked, "
                         r"\d+ not checkable offline, 0 problems$")

    def test_a_problem_fails_with_its_location(self):
        with tempfile.TemporaryDirectory() as tmp:
            bad = pathlib.Path(tmp) / "bad.bicep"
            bad.write_text("resource id 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {\n"
                           "  name: 'id'\n  location: 'x'\n  tag: {}\n}\n")
            status, out = self.run_main(tmp)
        self.assertEqual(status, 1)
        self.assertIn(f"{bad}:4: resource id (Microsoft.ManagedIdentity/userAssignedIdentities"
                      "@2023-01-31): tag: unknown property; did you mean tags?", out)
        self.assertTrue(out.splitlines()[-1].endswith(", 1 problems"), out)


def main():
    if not LIBRARY.files:
        print(f"no type definitions under {LIBRARY.root} (set AZURE_TYPES_DIR)")
        print("0 passed, 1 failed")
        return 1
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(f"{result.testsRun - failed - len(result.skipped)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
