# shellcheck shell=bash
# What cross/deb/build.sh needs to know about the fieldlink-cloud package (sourced).

deb_architectures=(amd64 arm64)
deb_user=fieldlink-cloud
deb_state_dir=/var/lib/fieldlink/cloud
deb_conffile=/etc/fieldlink/cloud.toml
# The service's own default configuration, with the embedded SQLite file moved into the state
# directory (the default is relative to the working directory, which is / under systemd and
# read-only there).
deb_conffile_source=cloud/src/config/default.toml
deb_conffile_edit='s|^sqlite_path = "fieldlink-cloud.db"$|sqlite_path = "/var/lib/fieldlink/cloud/fieldlink-cloud.db"|'
deb_conffile_must_hold='sqlite_path = "/var/lib/fieldlink/cloud/fieldlink-cloud.db"'
deb_section=net
deb_summary="Fieldlink cloud service: MQTT ingest, storage, alerts and API"
# The long description, lines of at most 78 characters ("." is an empty line).
deb_description="Fieldlink's cloud service. It takes the gateways' telemetry off an MQTT broker
and stores every reading once in TimescaleDB, PostgreSQL or an embedded SQLite
file, evaluates alert rules, serves a REST and WebSocket API with a dashboard,
and sends commands to gateways.
.
The package installs the systemd unit fieldlink-cloud.service (not enabled:
edit /etc/fieldlink/cloud.toml first, then enable it) and the system user
fieldlink-cloud. The embedded SQLite store lives in /var/lib/fieldlink/cloud
and is kept when the package is removed; purging removes it and the
configuration."
