"""The CrossGuard pack runs every rule on every resource of a stack, including objects pyagent
did not render, and `pulumi up` must never crash in a policy: rules return violations for any
JSON-shaped input, never raise (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyagent_compile.policy import ObjectContext, evaluate_object, evaluate_stack

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False),
    st.sampled_from(["", "0.0.0.0/0", "10.0.0.0/8", "::/0", "not-a-cidr", "TCP", "x@sha256:ab"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "spec",
                    "template",
                    "containers",
                    "ingress",
                    "egress",
                    "from",
                    "to",
                    "ports",
                    "port",
                    "ipBlock",
                    "cidr",
                    "podSelector",
                    "matchLabels",
                    "securityContext",
                    "resources",
                    "limits",
                    "requests",
                    "env",
                    "name",
                    "value",
                    "data",
                    "volumeClaimTemplates",
                    "storageClassName",
                    "image",
                    "policyTypes",
                    "namespaceSelector",
                    "capabilities",
                    "add",
                    "node.json",
                    "metadata",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=20,
)
kinds = st.sampled_from(
    [
        "StatefulSet",
        "Deployment",
        "Pod",
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "Namespace",
        "Service",
        None,
        3,
    ]
)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(
        st.dictionaries(
            st.sampled_from(["spec", "data", "metadata", "stringData", "automountServiceAccountToken"]),
            json_values,
            max_size=4,
        )
    )
    body["kind"] = draw(kinds)
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects(), st.sampled_from(["dev", "prod"]))
def test_object_rules_never_raise(body: dict[str, Any], tier: str) -> None:
    evaluate_object(body, ObjectContext(tier=tier))


@settings(max_examples=100, deadline=None)
@given(st.lists(objects(), max_size=4))
def test_stack_rules_never_raise(bodies: list[dict[str, Any]]) -> None:
    evaluate_stack(bodies, ObjectContext())


def test_malformed_network_policy_entries() -> None:
    junk = {
        "kind": "NetworkPolicy",
        "spec": {
            "ingress": [{"from": [None, {"ipBlock": "x"}], "ports": [{"port": [1]}]}, "junk"],
            "egress": {"to": 1},
        },
    }
    assert evaluate_object(junk, ObjectContext()) == []
    open_all = {"kind": "NetworkPolicy", "spec": {"ingress": [{"from": [None, {"ipBlock": {"cidr": "10.0.0.0/8"}}]}]}}
    assert sorted(v.rule for v in evaluate_object(open_all, ObjectContext())) == ["PA511", "PA512"]
