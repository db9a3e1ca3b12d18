#!/usr/bin/env bash
# Man pages and bash completions of wtrelay, wtrelay-tap and wtclient: made
# at build time from each program's flag table (src/app/cli.c). groff
# renders each page without a warning, man -l reads it, every flag of
# --help is in the page and in the completion, the completion completes,
# and cmake --install puts them where man and bash-completion look.
. "$(dirname "$0")/lib.sh"
SOURCE_DIR=${SOURCE_DIR:-.}
command -v groff >/dev/null || fail "groff missing (Debian package groff-base)"
command -v man >/dev/null || fail "man missing (Debian package man-db)"

for prog in wtrelay wtrelay-tap wtclient; do
  page=$BUILD_DIR/man/$prog.1 comp=$BUILD_DIR/completions/$prog
  [ -s "$page" ] || fail "$page was not generated"
  [ -s "$comp" ] || fail "$comp was not generated"
  cmp -s "$page" <("$BUILD_DIR/$prog" --man) || fail "$page is stale: differs from $prog --man"
  warn=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  [ -z "$warn" ] || fail "groff warns on $prog.1: $warn"
  MANWIDTH=80 man -l "$page" >"$TMP/$prog.txt" 2>"$TMP/$prog.manerr" || fail "man -l $page"
  [ ! -s "$TMP/$prog.manerr" ] || fail "man -l $prog.1: $(cat "$TMP/$prog.manerr")"
  grep -q "^NAME" "$TMP/$prog.txt" && grep -q "^OPTIONS" "$TMP/$prog.txt" ||
    fail "$prog.1 has no NAME or OPTIONS section"
  # every long flag of --help is in the page and in the completion word list
  flags=$("$BUILD_DIR/$prog" --help | grep -oE '^  (-[a-zA-Z], |    )--[a-z0-9-]+' | grep -oE -- '--[a-z0-9-]+')
  [ "$(echo "$flags" | wc -l)" -ge 10 ] || fail "$prog --help lists too few flags: $flags"
  words=$(grep -o "compgen -W '[^']*--[^']*'" "$comp" | tail -1)
  for f in $flags; do
    grep -qF -- "$f" "$TMP/$prog.txt" || fail "$prog.1 does not document $f"
    echo "$words" | grep -qE -- "$f( |')" || fail "the completion of $prog lacks $f"
  done
done
pass "man pages render without groff warnings and document every flag of --help"

# the completion completes: a flag prefix, a value with choices, a file
complete_line() { # script words... -> the candidates, one per line
  local script=$1
  shift
  bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); 
    fn=$(complete -p "$1" | awk "{print \$3}"); "$fn"; printf "%s\n" "${COMPREPLY[@]}"' \
    _ "$script" "$@"
}
[ "$(complete_line "$BUILD_DIR/completions/wtrelay" wtrelay --lease-t)" = "--lease-time" ] ||
  fail "wtrelay --lease-t<TAB>"
[ "$(complete_line "$BUILD_DIR/completions/wtrelay" wtrelay --retry al)" = "always" ] ||
  fail "wtrelay --retry al<TAB>: $(complete_line "$BUILD_DIR/completions/wtrelay" wtrelay --retry al)"
touch "$TMP/cert-for-completion.pem"
[ "$(complete_line "$BUILD_DIR/completions/wtrelay" wtrelay --cert-pem "$TMP/cert-for")" = \
  "$TMP/cert-for-completion.pem" ] || fail "wtrelay --cert-pem FILE<TAB>"
[ "$(complete_line "$BUILD_DIR/completions/wtrelay-tap" wtrelay-tap --log-level w)" = "warn" ] ||
  fail "wtrelay-tap --log-level w<TAB>"
[ "$(complete_line "$BUILD_DIR/completions/wtclient" wtclient --until)" = "--until-closed" ] ||
  fail "wtclient --until<TAB>"
pass "bash completion: flag names, --retry and --log-level choices, file names for FILE"

# cmake --install: man1 and bash-completion/completions under the prefix
cmake --install "$BUILD_DIR" --prefix "$TMP/prefix" >/dev/null || fail "cmake --install"
rm -rf "$TMP/prefix/share/doc" # testing.md names sanitizer reports; lib.sh scans $TMP for them
for prog in wtrelay wtrelay-tap wtclient; do
  [ -s "$TMP/prefix/share/man/man1/$prog.1" ] || fail "$prog.1 not installed in share/man/man1"
  [ -s "$TMP/prefix/share/bash-completion/completions/$prog" ] ||
    fail "the completion of $prog not installed in share/bash-completion/completions"
done
MANPATH="$TMP/prefix/share/man" man -w wtrelay-tap | grep -q "$TMP/prefix/share/man/man1/wtrelay-tap.1" ||
  fail "man does not find the installed wtrelay-tap(1)"
pass "cmake --install puts the pages in share/man/man1 and the completions in share/bash-completion/completions"
