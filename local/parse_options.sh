#!/usr/bin/env bash
# Kaldi-style options for the recipe scripts; source it after setting the defaults:
#
#   stage=0; conf=conf/tdanet.yml; help_message="usage: ..."
#   . local/parse_options.sh
#
# Every "--name value" or "--name=value" sets the shell variable $name (dashes in the name
# become underscores), which must already exist: a typo is an error, not a silent no-op.
# An option whose default is yes or no is a boolean: it accepts yes/no and, as Kaldi's and
# ESPnet's scripts do, true/false (any case), and is stored as yes or no. "--help" or "-h" calls the
# function usage if the caller defines one (so it can show values set by earlier options),
# else prints $help_message, and exits. Arguments after the options stay in "$@".

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      if declare -F usage >/dev/null; then
        usage
      else
        printf '%s\n' "${help_message:-no help available}"
      fi
      exit 0
      ;;
    --*=*)
      _opt_name=${1%%=*}
      _opt_value=${1#*=}
      shift
      ;;
    --*)
      if [ $# -lt 2 ]; then
        echo "$0: option $1 needs a value" >&2
        exit 1
      fi
      _opt_name=$1
      _opt_value=$2
      shift 2
      ;;
    *)
      break
      ;;
  esac
  _opt_name=${_opt_name#--}
  _opt_name=${_opt_name//-/_}
  if ! [[ "$_opt_name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || ! declare -p "$_opt_name" >/dev/null 2>&1; then
    echo "$0: unknown option --$_opt_name (see --help)" >&2
    exit 1
  fi
  case "${!_opt_name}" in
    yes|no)
      case "${_opt_value,,}" in
        yes|true) _opt_value=yes ;;
        no|false) _opt_value=no ;;
        *)
          echo "$0: option --$_opt_name takes yes or no (or true/false), got '$_opt_value'" >&2
          exit 1
          ;;
      esac
      ;;
  esac
  printf -v "$_opt_name" '%s' "$_opt_value"
done
unset _opt_name _opt_value
