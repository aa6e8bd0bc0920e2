#!/usr/bin/env bash
# Rebuilds the embedded font subsets in assets/fonts/ from Debian's fonts-noto-core.
# Run by hand when the supported character set changes; the outputs are committed, so
# neither builds nor CI need fonttools. Requires: apt-get install fonts-noto-core; pip install fonttools.
# The ranges below are the characters Countersign promises to print (see src/render/fonts.rs):
# Basic Latin, Latin-1, Latin Extended-A, Romanian S/T with comma below, general punctuation
# (dashes, quotes, bullet, ellipsis), per mille, guillemets, euro and trade mark.
set -euo pipefail
cd "$(dirname "$0")/.."
U="U+0020-007E,U+00A0-00FF,U+0100-017F,U+0218-021B,U+2010-2027,U+2030,U+2039-203A,U+20AC,U+2122"
for style in Regular Bold; do
  pyftsubset "/usr/share/fonts/truetype/noto/NotoSerif-$style.ttf" --unicodes="$U" \
    --no-hinting --layout-features='' --drop-tables+=GSUB,GPOS,GDEF,kern,DSIG --name-IDs='*' \
    --output-file="assets/fonts/NotoSerif-$style-subset.ttf"
done
