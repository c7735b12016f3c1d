"""The WES 1.1.0 OpenAPI document and toolchest-wes's extension document (data only)."""
