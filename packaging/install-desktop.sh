#!/bin/sh
# Adds LeukoScan to the Linux desktop menu of the current user (no root needed):
#   packaging/install-desktop.sh [BUNDLE_DIR]        default: dist/LeukoScan (make install-desktop)
#   LeukoScan/install-desktop.sh                     the copy inside a bundle folder installs that bundle
#   packaging/install-desktop.sh --uninstall
# Writes $XDG_DATA_HOME/applications/leukoscan.desktop (Exec = the bundle's absolute path), the
# application icon in $XDG_DATA_HOME/icons/hicolor/<size>/apps/leukoscan.png and the case-store file type
# (*.leukoscan, application/x-leukoscan-case) in $XDG_DATA_HOME/mime/packages/leukoscan.xml, so the file
# manager offers "Open with LeukoScan" for case stores. The bundle folder must stay where it is (move it,
# then run this again).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
APPS="$DATA/applications"
ICONS="$DATA/icons/hicolor"
MIME="$DATA/mime"
SIZES="16 24 32 48 64 128 256"

refresh() {
  command -v update-mime-database >/dev/null 2>&1 && [ -d "$MIME/packages" ] && update-mime-database "$MIME" 2>/dev/null || true
  command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$APPS" 2>/dev/null || true
  command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$ICONS" 2>/dev/null || true
}

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$APPS/leukoscan.desktop" "$MIME/packages/leukoscan.xml"
  for s in $SIZES; do rm -f "$ICONS/${s}x${s}/apps/leukoscan.png"; done
  refresh
  echo "LeukoScan removed from the desktop menu (the bundle folder itself was not touched)."
  exit 0
fi

if [ -n "${1:-}" ]; then
  BUNDLE=$1
elif [ -x "$HERE/LeukoScan" ]; then
  BUNDLE=$HERE             # the copy that sits inside an unpacked bundle folder
else
  BUNDLE=dist/LeukoScan    # the source tree (make install-desktop)
fi
if [ ! -x "$BUNDLE/LeukoScan" ]; then
  echo "install-desktop: $BUNDLE/LeukoScan not found: build it with 'make bundle' or pass the bundle folder" >&2
  exit 1
fi
BUNDLE=$(cd "$BUNDLE" && pwd)
EXE="$BUNDLE/LeukoScan"
case "$EXE" in
  *[\"\`\$\\\|\&]*) echo "install-desktop: the bundle path must not contain any of: \" \` \$ \\ | &  ($EXE)" >&2; exit 1 ;;
esac

# Icons: from the bundle (a release archive has no source tree), else from the source tree.
ICON_SRC="$BUNDLE/_internal/resources/icons"
[ -d "$ICON_SRC" ] || ICON_SRC="$HERE/../resources/icons"
installed=0
for s in $SIZES; do
  if [ -f "$ICON_SRC/leukoscan-$s.png" ]; then
    mkdir -p "$ICONS/${s}x${s}/apps"
    cp "$ICON_SRC/leukoscan-$s.png" "$ICONS/${s}x${s}/apps/leukoscan.png"
    installed=$((installed + 1))
  fi
done
[ "$installed" -gt 0 ] || echo "install-desktop: warning: no leukoscan-<size>.png icon found in $ICON_SRC" >&2

# The case-store file type (beside this script: in the bundle folder and in packaging/ alike).
if [ -f "$HERE/leukoscan-mime.xml" ]; then
  mkdir -p "$MIME/packages"
  cp "$HERE/leukoscan-mime.xml" "$MIME/packages/.leukoscan.xml.tmp"
  mv "$MIME/packages/.leukoscan.xml.tmp" "$MIME/packages/leukoscan.xml"
else
  echo "install-desktop: warning: leukoscan-mime.xml not found beside this script: case stores will not open with LeukoScan from the file manager" >&2
fi

mkdir -p "$APPS"
TMP="$APPS/.leukoscan.desktop.tmp"
# Exec: the path quoted per the Desktop Entry spec (spaces allowed).
sed -e "s|@EXEC@|\"$EXE\"|" -e "s|@TRYEXEC@|$EXE|" "$HERE/leukoscan.desktop.in" > "$TMP"
chmod 644 "$TMP"
mv "$TMP" "$APPS/leukoscan.desktop"
if command -v desktop-file-validate >/dev/null 2>&1; then desktop-file-validate "$APPS/leukoscan.desktop"; fi
refresh
echo "LeukoScan added to the desktop menu: $APPS/leukoscan.desktop -> $EXE ($installed icon sizes)"
