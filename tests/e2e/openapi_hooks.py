"""schemathesis hooks for docs/openapi.yaml: Glance's two JSON-patch media types are JSON."""

import schemathesis

schemathesis.serializer.alias(
    [
        "application/openstack-images-v2.1-json-patch",
        "application/openstack-images-v2.0-json-patch",
    ],
    "application/json",
)
