#!/usr/bin/env bash
# Vendor the dashboard's browser libraries into django_hook/static/eventlog/vendor/.
#
#   bash deploy/vendor_js.sh
#
# Installs the exact versions pinned in package.json / package-lock.json (npm ci,
# in a temporary directory: no node_modules in the repository) and copies each
# library's minified UMD build with its licence. The results are committed, so the
# site, the tests and `make demo` never need npm or a CDN; run this only to upgrade.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/django_hook/static/eventlog/vendor"
BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT

command -v npm >/dev/null || { echo "npm is needed (Node 18+)" >&2; exit 1; }
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$BUILD/"
(cd "$BUILD" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
NM="$BUILD/node_modules"

copy() {  # copy <package> <file in package> <licence file in package> <destination dir>
  mkdir -p "$OUT/$4"
  cp "$NM/$1/$2" "$OUT/$4/"
  cp "$NM/$1/$3" "$OUT/$4/LICENSE"
}

rm -rf "$OUT"
copy chart.js dist/chart.umd.min.js LICENSE.md chartjs
copy chartjs-chart-geo build/index.umd.min.js LICENSE chartjs-chart-geo
copy country-flag-icons 3x2/flags.css LICENSE country-flag-icons
mkdir -p "$OUT/world-atlas"
cp "$NM/world-atlas/LICENSE" "$OUT/world-atlas/LICENSE"

# World map: Natural Earth 1:110m countries (TopoJSON), each country tagged with
# its ISO 3166-1 alpha-2 code (the store keeps country_code), so the dashboard's
# map needs no lookup table.
(cd "$BUILD" && node - "$NM/world-atlas/countries-110m.json" "$OUT/world-atlas/countries-110m.json" <<'JS'
const fs = require("fs");
const countries = require("i18n-iso-countries");
const [src, dest] = process.argv.slice(2);
const world = JSON.parse(fs.readFileSync(src, "utf8"));
for (const geometry of world.objects.countries.geometries) {
  const a2 = geometry.id ? countries.numericToAlpha2(geometry.id) : undefined;
  geometry.properties = { name: geometry.properties.name, a2: a2 || null };
}
fs.writeFileSync(dest, JSON.stringify(world));
JS
)

# What was vendored, for upgrades and audits.
node -e '
const lock = require(process.argv[1]).packages;
const names = ["chart.js", "chartjs-chart-geo", "country-flag-icons", "world-atlas", "i18n-iso-countries"];
const lines = names.map(n => `${n} ${lock["node_modules/" + n].version} (${lock["node_modules/" + n].license})`);
require("fs").writeFileSync(process.argv[2], "Vendored by deploy/vendor_js.sh from npm:\n" + lines.join("\n") + "\n" +
  "i18n-iso-countries is used at build time only (alpha-2 codes in world-atlas/countries-110m.json).\n");
' "$BUILD/package-lock.json" "$OUT/VERSIONS.txt"

echo "vendored into $OUT:"
(cd "$OUT" && find . -type f | sort | xargs ls -l | awk '{print "  " $5 "\t" $9}')
