"""PortSIP PBX's REST API, as the importer reads it."""
