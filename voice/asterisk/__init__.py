"""The Asterisk the gateway runs: installer (Debian sid packages into a prefix) and process lifecycle."""

from voice.asterisk.installer import AsteriskInstallError, InstallResult, asterisk_command, install_asterisk
from voice.asterisk.instance import AsteriskError, AsteriskInstance, AsteriskStartError, InstancePorts

__all__ = [
    "AsteriskError",
    "AsteriskInstallError",
    "AsteriskInstance",
    "AsteriskStartError",
    "InstallResult",
    "InstancePorts",
    "asterisk_command",
    "install_asterisk",
]
