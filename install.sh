#!/bin/sh
# Installs teleport-email from the release tarball (shipped there as `install`). POSIX sh.
#
#   sudo ./install
#
# Environment (all optional):
#   DESTDIR           stage into this root instead of / (packaging; root is not required)
#   BINDIR            where the binary goes (default /usr/local/bin)
#   DATADIR           the plugin's data directory (default /var/lib/teleport/plugins/email)
#   SYSTEMD_UNIT_DIR  where teleport-email.service goes (default /usr/lib/systemd/system); the
#                     unit is installed when this is set, when DESTDIR is set, or when systemd runs
#
# Running it again upgrades the binary in place: the new file is written beside the old one and
# renamed over it, so a running plugin keeps its old file until it is restarted. An existing
# /etc/teleport-email.toml is never touched.
set -eu

BINDIR="${BINDIR:-/usr/local/bin}"
DATADIR="${DATADIR:-/var/lib/teleport/plugins/email}"
DESTDIR="${DESTDIR:-}"
CONFIG=/etc/teleport-email.toml

if [ "$(id -u)" -ne 0 ] && [ -z "$DESTDIR" ]; then
    echo "ERROR: You must be root" >&2
    exit 1
fi

cd "$(dirname "$0")" || exit 1

if [ ! -f teleport-email ]; then
    echo "ERROR: teleport-email not found in $(pwd)" >&2
    exit 1
fi

# install_file SOURCE TARGET MODE: copy to a temporary name in the target directory, then rename.
install_file() {
    tmp="$2.new.$$"
    if ! cp -f "$1" "$tmp" || ! chmod "$3" "$tmp" || ! mv -f "$tmp" "$2"; then
        rm -f "$tmp"
        echo "ERROR: cannot install $2" >&2
        exit 1
    fi
}

mkdir -p "$DESTDIR$BINDIR" || exit 1
install_file teleport-email "$DESTDIR$BINDIR/teleport-email" 0755

# The data directory holds identity and password files: private when we create it. An existing
# one keeps its mode and ACLs (tbot may have been granted access to it).
if [ ! -d "$DESTDIR$DATADIR" ]; then
    mkdir -p "$(dirname "$DESTDIR$DATADIR")" || exit 1
    mkdir -m 0700 "$DESTDIR$DATADIR" || exit 1
fi

unit_dir=""
if [ -n "${SYSTEMD_UNIT_DIR:-}" ]; then
    unit_dir="$SYSTEMD_UNIT_DIR"
elif [ -n "$DESTDIR" ] || [ -d /run/systemd/system ]; then
    unit_dir=/usr/lib/systemd/system
fi
unit_installed=""
if [ -n "$unit_dir" ] && [ -f teleport-email.service ]; then
    mkdir -p "$DESTDIR$unit_dir" || exit 1
    unit_tmp="$DESTDIR$unit_dir/teleport-email.service.new.$$"
    # Point ExecStart at the binary we installed.
    if ! sed "s#/usr/local/bin/teleport-email #$BINDIR/teleport-email #" teleport-email.service >"$unit_tmp" ||
        ! chmod 0644 "$unit_tmp" || ! mv -f "$unit_tmp" "$DESTDIR$unit_dir/teleport-email.service"; then
        rm -f "$unit_tmp"
        echo "ERROR: cannot install $DESTDIR$unit_dir/teleport-email.service" >&2
        exit 1
    fi
    unit_installed="$unit_dir/teleport-email.service"
    if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        systemctl daemon-reload || true
    fi
fi

echo "Teleport Email binaries have been copied to $BINDIR"
if [ -n "$unit_installed" ]; then
    echo "The systemd unit has been copied to $unit_installed"
fi
if [ -f "$DESTDIR$CONFIG" ]; then
    echo "Keeping the existing configuration file $CONFIG"
else
    echo "You can run teleport-email configure > $CONFIG to bootstrap your config file"
fi
echo
echo "Next steps:"
if [ ! -f "$DESTDIR$CONFIG" ]; then
    echo "  teleport-email configure > $CONFIG    # then edit it"
fi
echo "  teleport-email version"
if [ -n "$unit_installed" ]; then
    echo "  systemctl enable --now teleport-email    # after an upgrade: systemctl restart teleport-email"
else
    echo "  teleport-email start --config=$CONFIG"
fi
