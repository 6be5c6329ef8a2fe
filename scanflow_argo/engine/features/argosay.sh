#!/bin/sh
# The local twin of /argosay, the entrypoint of Argo's test image argoproj/argosay:v2
# (argo-workflows test/e2e/images/argosay/v2/, at f016ad89). The image's /argosay is a POSIX sh
# script run by Ubuntu's sh with Ubuntu's cat, grep, mkdir and sleep; this twin is run by this
# machine's, with the same commands and exit codes:
#   (no arguments)          prints "hello argo"
#   echo                    prints "hello argo";  echo MSG: prints MSG;  echo MSG FILE: writes MSG
#                           and a newline to FILE (its folder made first); more arguments: nothing
#   cat FILE                prints FILE
#   assert_contains FILE S  grep -F S FILE: prints the matching lines, exit 1 when none, 2 without FILE
#   exit [N]                exits N (default 0)
#   sleep D                 sleep D (this machine's sleep: 5, 2s, 0.5, 1m)
#   sh FILE                 runs FILE with sh
#   anything else           exit 1, silently
# A missing argument is an error of sh's `set -u` (exit 2), as in the image. The image pauses 0.1 s
# after writing a file, for the PNS executor (removed in Argo 3.4); nothing here needs it.
set -eu

case ${1:-} in
'') echo "hello argo" ;;
assert_contains) grep -F "$3" "$2" ;;
cat) cat "$2" ;;
echo)
    if [ $# -eq 1 ]; then
        echo "hello argo"
    elif [ $# -eq 2 ]; then
        echo "$2"
    elif [ $# -eq 3 ]; then
        mkdir -p "$(dirname "$3")"
        echo "$2" >"$3"
    fi
    ;;
exit) exit "${2:-0}" ;;
sleep) sleep "$2" ;;
sh) sh "${2:-0}" ;;
*) exit 1 ;;
esac
