#!/usr/bin/env bash
# Gives systemd a cfn-hup.service before cfn-init enables it. aws-cfn-bootstrap on AL2023 has shipped
# without an installed unit ("Unit cfn-hup.service could not be found", amazon-linux-2023#728); its
# own template then lies under /opt/aws/apitools, else this repository's copy is installed.
set -euo pipefail
UNIT=cfn-hup.service
PACKAGED_TEMPLATE=/opt/aws/apitools/cfn-init/init/systemd/$UNIT
OWN_COPY=$(cd "$(dirname "${BASH_SOURCE[0]}")/../config" && pwd)/$UNIT
UNIT_DIR=/etc/systemd/system

if systemctl cat "$UNIT" >/dev/null 2>&1; then
  exit 0
fi
source=$PACKAGED_TEMPLATE
[[ -f $source ]] || source=$OWN_COPY
echo "cfn-hup-unit: systemd has no $UNIT, installing $source as $UNIT_DIR/$UNIT" >&2
install -D -m 0644 "$source" "$UNIT_DIR/$UNIT"
systemctl daemon-reload
