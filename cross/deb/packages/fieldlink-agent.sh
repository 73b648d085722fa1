# shellcheck shell=bash
# What cross/deb/build.sh needs to know about the fieldlink-agent package (sourced).

# Debian architectures this package is built for (goal D1: every Raspberry Pi, and x86 hosts).
deb_architectures=(amd64 arm64 armhf)
# The service's system user and the state directory it owns (the unit's StateDirectory=).
deb_user=fieldlink-agent
deb_state_dir=/var/lib/fieldlink/agent
# The configuration file, a conffile: where it is installed and what it is made from.
deb_conffile=/etc/fieldlink/agent.toml
deb_conffile_source=agent/agent.example.toml
# A line the shipped configuration must hold: the journal in the state directory.
deb_conffile_must_hold='path = "/var/lib/fieldlink/agent/journal.db"'
deb_section=net
deb_summary="Fieldlink gateway agent: field devices to cloud telemetry"
# The long description, lines of at most 78 characters ("." is an empty line).
deb_description="Fieldlink's gateway daemon for Raspberry Pi and other Linux gateways. It polls
field devices over Modbus TCP, Modbus RTU (RS-485) and plain serial lines,
journals every reading in a local SQLite file, and publishes the readings over
MQTT with TLS to the Fieldlink cloud service, which may send commands back.
.
The package installs the systemd unit fieldlink-agent.service (not enabled:
edit /etc/fieldlink/agent.toml first, then enable it) and the system user
fieldlink-agent, a member of dialout for the serial ports. The journal lives
in /var/lib/fieldlink/agent and is kept when the package is removed; purging
removes it and the configuration."
