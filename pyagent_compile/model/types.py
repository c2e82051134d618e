"""Constrained scalar types of the spec. Each failure is a PydanticCustomError whose type
(`pyagent_invalid`) the model builder turns into PA206 with the message given here."""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from pyagent_compile.model.quantity import parse_duration, parse_quantity

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_IMAGE = re.compile(r"^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_.-]{1,128})?(@sha256:[0-9a-f]{64})?$")
_JURISDICTION = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
# http://host[:port][/path]: no query, fragment, credentials or spaces (see _model_endpoint).
_MODEL_ENDPOINT = re.compile(r"^http://[A-Za-z0-9.\[\]:-]+(/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?$")


def invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("pyagent_invalid", message)


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise invalid(
            f"{value!r} is not a DNS-1123 label (lower-case letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


def _label_value(value: str) -> str:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise invalid(f"{value!r} is not a valid Kubernetes label value")
    return value


def _label_key(value: str) -> str:
    if len(value) > 253 or not _LABEL_KEY.match(value):
        raise invalid(f"{value!r} is not a valid Kubernetes label key")
    return value


def _quantity(value: str | int | float) -> str | int | float:
    try:
        amount = parse_quantity(value)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    if amount < 0:
        raise invalid(f"{value!r} is negative")
    return value


def _duration(value: str) -> str:
    try:
        parse_duration(value)
    except ValueError as exc:
        raise invalid(str(exc)) from None
    return value


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise invalid(f"{value!r} is not a CIDR ({exc})") from None
    return str(network)


def _public_key(value: str) -> str:
    prefix = "ed25519:"
    if not value.startswith(prefix):
        raise invalid("the owner key is written `ed25519:<base64 of the 32-byte public key>`")
    try:
        raw = base64.b64decode(value[len(prefix) :], validate=True)
    except ValueError:
        raise invalid("the owner key is not valid base64") from None
    if len(raw) != 32:
        raise invalid(f"an Ed25519 public key is 32 bytes; this one is {len(raw)}")
    return value


def _image_ref(value: str) -> str:
    if not _IMAGE.match(value):
        raise invalid(f"{value!r} is not an image reference (registry/name:tag or registry/name@sha256:...)")
    return value


def _jurisdiction(value: str) -> str:
    if not _JURISDICTION.match(value):
        raise invalid(
            f"{value!r} is not a jurisdiction code (ISO 3166 alpha-2 such as DE or US, "
            "a region such as EU, or a subdivision such as US-CA)"
        )
    return value


def _model_endpoint(value: str) -> str:
    # The node speaks plain HTTP to its model server (pyagent-model): an https URL would fail at
    # run time, so it fails here. Credentials belong in `apiKey` (a Secret), never in the URL.
    if not _MODEL_ENDPOINT.match(value):
        raise invalid(
            f"{value!r} is not a model endpoint: the base URL of an OpenAI-compatible server, "
            "http://host[:port][/path] (e.g. http://127.0.0.1:8080/v1), without a query or credentials"
        )
    return value


# host:port, no path: the OTLP/gRPC service is at the root of the receiver.
OTLP_ENDPOINT = re.compile(
    r"^http://[A-Za-z0-9.-]+:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$"
)


def _otlp_endpoint(value: str) -> str:
    # The node sends plain OTLP/gRPC to a collector beside the swarm (pyagent-node telemetry.rs);
    # TLS and credentials towards a tracing backend are the collector's job.
    if not OTLP_ENDPOINT.match(value):
        raise invalid(
            f"{value!r} is not an OTLP/gRPC endpoint: http://host:port, without a path "
            "(e.g. http://otel-collector.monitoring.svc:4317)"
        )
    return value


def otlp_port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def is_pinned(image: str) -> bool:
    return bool(_DIGEST.search(image))


DnsLabel = Annotated[str, AfterValidator(_dns_label)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Quantity = Annotated[str | int | float, AfterValidator(_quantity)]
Duration = Annotated[str, AfterValidator(_duration)]
Cidr = Annotated[str, AfterValidator(_cidr)]
PublicKey = Annotated[str, AfterValidator(_public_key)]
ImageRef = Annotated[str, AfterValidator(_image_ref)]
Jurisdiction = Annotated[str, AfterValidator(_jurisdiction)]
ModelEndpoint = Annotated[str, AfterValidator(_model_endpoint)]
OtlpEndpoint = Annotated[str, AfterValidator(_otlp_endpoint)]
Port = Annotated[int, Field(ge=1, le=65535)]
