"""Exceptions: by annotation or in policies/exceptions.yaml, each with a reason and an expiry date."""

import datetime

from test_policy_builders import deployment, policies, run, summary

DEPLOY = "apps/Deployment/hf-app/prescription"
EXPIRES = datetime.date(2025, 6, 30)
ANNOTATION = {"policy.healthflow.io/exception": "min-replicas; reason=migration window TICKET-7; expires=2025-06-30"}


def _annotated(text=None):
    return deployment(replicas=1, annotations={"policy.healthflow.io/exception": text} if text else ANNOTATION)


def test_an_annotation_exception_excepts_the_violation_and_it_no_longer_blocks(tmp_path):
    report = run([_annotated()], policies(tmp_path, "min-replicas", env="dev", settings={"replicas": {"min_replicas": 3}}))
    [violation] = report.violations
    assert violation.excepted_by == f"annotation on {DEPLOY}: migration window TICKET-7 (expires 2025-06-30)"
    assert report.blocking_stacks() == set()


def test_an_exception_still_applies_on_its_expiry_date(tmp_path):
    policy_set = policies(tmp_path, "min-replicas", env="dev", settings={"replicas": {"min_replicas": 3}})
    assert run([_annotated()], policy_set, today=EXPIRES).violations[0].excepted_by is not None


def test_an_expired_exception_stops_applying_the_day_after_its_expiry(tmp_path):
    policy_set = policies(tmp_path, "min-replicas", env="dev", settings={"replicas": {"min_replicas": 3}})
    [violation] = run([_annotated()], policy_set, today=EXPIRES + datetime.timedelta(days=1)).violations
    assert violation.excepted_by is None
    assert violation.fix.endswith(f"(the exception from annotation on {DEPLOY} expired on 2025-06-30)")
    assert run([_annotated()], policy_set, today=EXPIRES + datetime.timedelta(days=1)).blocking_stacks() == {"application"}


def test_an_exception_covers_only_the_rules_it_names(tmp_path):
    manifest = _annotated()
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:latest"
    report = run([manifest], policies(tmp_path, "min-replicas", "image-tag", env="dev", settings={"replicas": {"min_replicas": 3}}))
    assert {(v.rule, v.excepted_by is not None) for v in report.violations} == {("min-replicas", True), ("image-tag", False)}


def test_a_file_exception_matches_objects_by_pattern_and_environment(tmp_path):
    entry = {"rule": "min-replicas", "object": "apps/Deployment/hf-app/*", "environments": ["dev"],
             "reason": "dev runs one copy", "expires": "2025-12-31"}
    dev = policies(tmp_path / "dev", "min-replicas", env="dev", exceptions=[entry])
    staging = policies(tmp_path / "staging", "min-replicas", env="staging", exceptions=[entry])
    assert run([deployment(replicas=1)], dev).violations[0].excepted_by.endswith(": dev runs one copy (expires 2025-12-31)")
    assert run([deployment(replicas=1)], staging).violations[0].excepted_by is None


def test_exceptions_are_ignored_where_the_environment_disallows_them(tmp_path):
    policy_set = policies(tmp_path, "min-replicas", env="prod", settings={"exceptions": {"allowed": True}},
                          settings_by_env={"exceptions": {"prod": {"allowed": False}}})
    [violation] = run([_annotated()], policy_set).violations
    assert violation.excepted_by is None
    assert violation.fix.endswith(f"(exceptions are not allowed in prod; ignored annotation on {DEPLOY})")


def test_an_annotation_may_carry_several_exceptions_one_per_line(tmp_path):
    text = "min-replicas; reason=a; expires=2025-12-31\nimage-tag; reason=b; expires=2025-12-31\n"
    manifest = _annotated(text)
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:latest"
    report = run([manifest], policies(tmp_path, "min-replicas", "image-tag", env="dev", settings={"replicas": {"min_replicas": 3}}))
    assert all(v.excepted_by for v in report.violations) and len(report.violations) == 2


def test_a_malformed_annotation_is_reported_and_excepts_nothing(tmp_path):
    manifest = _annotated("min-replicas; reason=no date given")
    report = run([manifest], policies(tmp_path, "min-replicas", "exception-format", env="dev", settings={"replicas": {"min_replicas": 3}}))
    assert summary(report.violations) == [
        ("min-replicas", DEPLOY, "Deployment prescription runs 1 replica(s), at least 3 required: spec.replicas is 1"),
        ("exception-format", DEPLOY,
         "annotation policy.healthflow.io/exception line 1 ('min-replicas; reason=no date given'): no valid expires=YYYY-MM-DD"),
    ]
    assert report.violations[0].excepted_by is None


def test_an_annotation_naming_an_unknown_rule_is_reported(tmp_path):
    report = run([_annotated("min-replica; reason=x; expires=2025-12-31")], policies(tmp_path, "exception-format", env="dev"))
    assert [v.message for v in report.violations] == [
        "annotation policy.healthflow.io/exception line 1 ('min-replica; reason=x; expires=2025-12-31'): unknown rule(s) min-replica"
    ]
