# shellcheck shell=bash
# Shared helpers of local/download_<dataset>.sh (stage 0). Sourced, never run.
#
# What every download script gets from here:
#   tdanet_parse_options "$@"     Kaldi-style --name value / --name=value options
#   tdanet_check_disk DIR GB WHAT  stop early, saying how much space is needed
#   tdanet_fetch URL DEST [SHA256] [FALLBACK_URL...]  resumable download (curl -C - / wget -c)
#                                 with retries, then the fallback addresses
#   tdanet_fetch_and_extract ...   fetch + extract once + drop the archive
#   tdanet_accept_license ...      print terms; the user accepts them once per root
#   tdanet_is_done / tdanet_mark_done   markers so that re-runs skip finished parts
#   tdanet_has_modules MOD...      check $PYTHON's packages before any long step
#
# Environment (all optional):
#   TDANET_ACCEPT_LICENSE=1    accept licence terms without the prompt (= --accept_license)
#   TDANET_DISK_NEED_GB=N      use N GB instead of the script's estimate of the space needed
#   TDANET_SKIP_DISK_CHECK=1   skip the free-space check
#   TDANET_NO_CHECKSUM=1       skip the SHA-256 check of archives with a known checksum
#   TDANET_FETCH_RETRIES=N     attempts per file (default 20)
#   TDANET_FETCH_RETRY_DELAY=S seconds between attempts (default 10)
#   TDANET_DOWNLOADER=curl|wget  force a download tool (default: curl if installed, else wget)
#   HF_TOKEN                   sent to huggingface.co if set (gated data sets answer 401/403
#                              without it)
#   PYTHON                     python used for generation steps (default: python3)

tdanet_log() { printf '[%s] %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }

tdanet_die() {
  printf 'ERROR: %s\n' "$*" >&2
  exit 1
}

tdanet_python() { "${PYTHON:-python3}" "$@"; }

# tdanet_has_modules MOD...: whether $PYTHON can import these top-level modules (looked up,
# not imported, so the check is instant).
tdanet_has_modules() {
  tdanet_python -c 'import importlib.util as u, sys
sys.exit(any(u.find_spec(m) is None for m in sys.argv[1:]))' "$@" 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# Options. The script sets defaults for its option variables, lists them in TDANET_OPTIONS and
# defines usage(). Options whose default is true/false also work as bare flags.
tdanet_parse_options() {
  local arg name value var
  while [ $# -gt 0 ]; do
    arg=$1
    shift
    case $arg in
      -h | --help)
        usage
        exit 0
        ;;
      --*=*)
        name=${arg%%=*}
        value=${arg#*=}
        ;;
      --*)
        name=$arg
        value=""
        ;;
      *) tdanet_die "unexpected argument '$arg' (see --help)" ;;
    esac
    var=${name#--}
    var=${var//-/_}
    [[ " $TDANET_OPTIONS " == *" $var "* ]] || tdanet_die "unknown option $name (see --help)"
    if [[ $arg != *=* ]]; then
      if [[ ${!var} == true || ${!var} == false ]] && { [ $# -eq 0 ] || [[ $1 == --* ]]; }; then
        value=true
      else
        [ $# -gt 0 ] || tdanet_die "option $name needs a value (see --help)"
        value=$1
        shift
      fi
    fi
    printf -v "$var" '%s' "$value"
  done
}

# ---------------------------------------------------------------------------------------------
# Disk space. tdanet_check_disk DIR NEED_GB WHAT
tdanet_check_disk() {
  local dir=$1 need=${TDANET_DISK_NEED_GB:-$2} what=$3 avail_kb free_gb
  mkdir -p "$dir"
  if [ "${TDANET_SKIP_DISK_CHECK:-0}" = 1 ]; then
    tdanet_log "Free-space check skipped (TDANET_SKIP_DISK_CHECK=1); $what needs about $need GB."
    return 0
  fi
  avail_kb=$(df -Pk "$dir" | awk 'NR == 2 {print $4}')
  free_gb=$(awk -v a="$avail_kb" 'BEGIN {printf "%.1f", a / 1048576}')
  if awk -v a="$avail_kb" -v n="$need" 'BEGIN {exit !(a < n * 1048576)}'; then
    tdanet_die "not enough free disk space in $dir: $what needs about $need GB, only" \
      "$free_gb GB are free. Free some space or choose another --root" \
      "(TDANET_SKIP_DISK_CHECK=1 skips this check)."
  fi
  tdanet_log "Disk space: $what needs about $need GB; $free_gb GB free in $dir."
}

# ---------------------------------------------------------------------------------------------
# Markers: a part is finished once its marker exists, so re-running skips it.
tdanet_is_done() { [ -f "$1/.tdanet_done_$2" ]; }

tdanet_mark_done() {
  mkdir -p "$1"
  date '+%Y-%m-%d %H:%M:%S' >"$1/.tdanet_done_$2"
}

# ---------------------------------------------------------------------------------------------
# Downloads.
_tdanet_downloader() {
  local tool=${TDANET_DOWNLOADER:-}
  if [ -z "$tool" ]; then
    if command -v curl >/dev/null 2>&1; then tool=curl; else tool=wget; fi
  fi
  command -v "$tool" >/dev/null 2>&1 || tdanet_die "$tool not found: install curl or wget"
  echo "$tool"
}

# One attempt, continuing PART if it exists. Prints the HTTP status (curl) on stdout.
# Exit: 0 done, 2 not found (404/410), 3 not allowed (401/403): no point retrying; other: retry.
_tdanet_fetch_once() {
  local tool=$1 url=$2 part=$3 code rc=0 log
  local -a auth=()
  if [ -n "${HF_TOKEN:-}" ] && [[ $url == *huggingface.co/* ]]; then
    auth=(--header "Authorization: Bearer $HF_TOKEN")
  fi
  if [ "$tool" = curl ]; then
    # -f: an HTTP error never lands in the file. --speed-limit/--speed-time: a stalled
    # transfer counts as cut and is resumed.
    code=$(curl -fL -sS -C - --connect-timeout 30 --speed-limit 1024 --speed-time 120 \
      ${auth[@]+"${auth[@]}"} -o "$part" -w '%{http_code}' "$url") || rc=$?
    case $code in
      401 | 403)
        rm -f "$part"
        tdanet_log "HTTP $code for $url"
        return 3
        ;;
      404 | 410)
        rm -f "$part"
        tdanet_log "HTTP $code for $url"
        return 2
        ;;
      416)
        # Asked to resume past the end: the part file already holds the whole file.
        return 0
        ;;
      2??) ;;
      000) ;;
      *) [ $rc -ne 0 ] || rc=22 ;;
    esac
    if [ $rc -eq 33 ]; then
      # The server cannot resume: start this file again from zero.
      tdanet_log "Server does not support resuming; restarting $url from the beginning"
      rm -f "$part"
    fi
    return $rc
  fi
  log=$(mktemp)
  wget -c --tries=1 --timeout=120 -O "$part" ${auth[@]+"${auth[@]}"} "$url" 2>"$log" || rc=$?
  if [ $rc -eq 8 ] && grep -qE 'ERROR (401|403|404|410)' "$log"; then
    cat "$log" >&2
    rc=2
    grep -qE 'ERROR (401|403)' "$log" && rc=3
    rm -f "$log" "$part"
    return $rc
  fi
  [ $rc -eq 0 ] || tail -n 3 "$log" >&2
  rm -f "$log"
  return $rc
}

# _tdanet_fetch_from TOOL URL PART: attempts (with retries) to complete PART from URL.
# Exit: 0 done, 2 not found, 3 not allowed, 4 still failing after the retries.
_tdanet_fetch_from() {
  local tool=$1 url=$2 part=$3 attempt=1 rc
  local tries=${TDANET_FETCH_RETRIES:-20} delay=${TDANET_FETCH_RETRY_DELAY:-10}
  tdanet_log "Downloading $url ($tool)"
  while :; do
    rc=0
    _tdanet_fetch_once "$tool" "$url" "$part" >/dev/null || rc=$?
    case $rc in 0 | 2 | 3) return $rc ;; esac
    if [ "$attempt" -ge "$tries" ]; then
      tdanet_log "Download of $url failed $tries times (last exit code $rc)"
      return 4
    fi
    tdanet_log "Transfer interrupted (exit code $rc), attempt $attempt/$tries: resuming in ${delay}s"
    attempt=$((attempt + 1))
    sleep "$delay"
  done
}

# tdanet_fetch URL DEST [SHA256] [FALLBACK_URL...]: download URL to DEST; an interrupted
# transfer (DEST.part) is resumed on the next attempt or the next run. When URL fails (not
# found, not allowed, or every retry), each FALLBACK_URL is tried in turn (from zero). DEST
# only appears once complete (and verified). A script may set auth_hint: printed on 401/403.
tdanet_fetch() {
  local url=$1 dest=$2 sha=${3:-} part="$2.part" rc=0 source last_rc=0 denied=false tool
  local -a urls=("$url" "${@:4}")
  if [ -f "$dest" ]; then
    tdanet_log "Already downloaded: $dest"
    tdanet_verify "$dest" "$sha"
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  tool=$(_tdanet_downloader) || exit 1  # it said why
  for source in "${urls[@]}"; do
    if [ "$source" != "$url" ]; then
      tdanet_log "Trying the fallback address $source"
      rm -f "$part"  # another server: start this file again
    fi
    rc=0
    _tdanet_fetch_from "$tool" "$source" "$part" || rc=$?
    if [ $rc -eq 0 ]; then
      mv -f "$part" "$dest"
      tdanet_log "Downloaded $dest (from $source)"
      tdanet_verify "$dest" "$sha"
      return 0
    fi
    [ $rc -ne 3 ] || denied=true
    last_rc=$rc
  done
  if [ "$denied" = true ]; then
    tdanet_die "access to ${urls[*]} was refused (HTTP 401/403).${auth_hint:+ $auth_hint}" \
      "Check the URL or the TDANET_*_URL variable that overrides it."
  fi
  if [ $last_rc -eq 2 ]; then
    tdanet_die "cannot download ${urls[*]} (not found). Check the URL or the TDANET_*_URL" \
      "variable that overrides it."
  fi
  tdanet_die "download of ${urls[*]} failed. Re-run the same command to resume from the" \
    "$(du -h "$part" 2>/dev/null | cut -f1) already in $part."
}

# tdanet_verify FILE [SHA256]: check a known checksum once (a marker remembers success).
# A mismatching file is kept as FILE.corrupt (for inspection) and the message says its size and
# how to delete it; the next verified download deletes it.
tdanet_verify() {
  local file=$1 sha=${2:-} actual size
  [ -n "$sha" ] || return 0
  if [ "${TDANET_NO_CHECKSUM:-0}" = 1 ]; then
    tdanet_log "Checksum of $file not checked (TDANET_NO_CHECKSUM=1)"
    return 0
  fi
  if [ -f "$file.sha256ok" ] && [ "$(cat "$file.sha256ok")" = "$sha" ]; then return 0; fi
  tdanet_log "Checking SHA-256 of $file"
  if command -v sha256sum >/dev/null 2>&1; then
    actual=$(sha256sum "$file" | cut -d' ' -f1)
  else
    actual=$(shasum -a 256 "$file" | cut -d' ' -f1)
  fi
  if [ "$actual" != "$sha" ]; then
    mv -f "$file" "$file.corrupt"
    size=$(du -h "$file.corrupt" | cut -f1)
    tdanet_die "checksum mismatch for $file: expected $sha, got $actual. The file ($size) was" \
      "kept as $file.corrupt for inspection; delete it with: rm '$file.corrupt'. Re-running" \
      "downloads it again (and deletes $file.corrupt once the new copy checks out)."
  fi
  echo "$sha" >"$file.sha256ok"
  if [ -f "$file.corrupt" ]; then
    rm -f "$file.corrupt"
    tdanet_log "Deleted $file.corrupt (a previous, damaged download)"
  fi
}

# tdanet_extract ARCHIVE DEST NAME: extract once (marker DEST/.tdanet_done_extract_NAME).
tdanet_extract() {
  local archive=$1 dest=$2 name=$3 rc=0
  if tdanet_is_done "$dest" "extract_$name"; then
    tdanet_log "Already extracted: $name"
    return 0
  fi
  mkdir -p "$dest"
  tdanet_log "Extracting $archive into $dest"
  case $archive in
    *.zip) unzip -q -o "$archive" -d "$dest" || rc=$? ;;
    *.tar.gz | *.tgz) tar -xzf "$archive" -C "$dest" --no-same-owner || rc=$? ;;
    *.tar) tar -xf "$archive" -C "$dest" --no-same-owner || rc=$? ;;
    *) tdanet_die "do not know how to extract $archive" ;;
  esac
  if [ $rc -ne 0 ]; then
    tdanet_die "extracting $archive failed (exit code $rc): the archive may be damaged;" \
      "delete it and re-run to download it again."
  fi
  tdanet_mark_done "$dest" "extract_$name"
}

# tdanet_fetch_and_extract URL ARCHIVE DEST NAME [SHA256] [FALLBACK_URL...]: skip when already
# extracted; the archive is deleted after extraction unless the script's keep_archives=true.
tdanet_fetch_and_extract() {
  local url=$1 archive=$2 dest=$3 name=$4 sha=${5:-}
  if tdanet_is_done "$dest" "extract_$name"; then
    tdanet_log "$name: already downloaded and extracted"
    return 0
  fi
  tdanet_fetch "$url" "$archive" "$sha" "${@:6}"
  tdanet_extract "$archive" "$dest" "$name"
  if [ "${keep_archives:-false}" != true ]; then
    rm -f "$archive" "$archive.sha256ok"
    tdanet_log "Deleted $archive to save space (--keep_archives keeps archives)"
  fi
}

# ---------------------------------------------------------------------------------------------
# Licences. tdanet_license_notice NAME TEXT prints terms; tdanet_accept_license NAME TEXT also
# needs the user's agreement, once per --root (remembered in ROOT/.tdanet_license_NAME).
tdanet_license_notice() {
  printf '\n==== Licence: %s ====\n%s\n\n' "$1" "$2" >&2
}

tdanet_accept_license() {
  local name=$1 text=$2 marker="$root/.tdanet_license_$1" answer
  tdanet_license_notice "$name" "$text"
  if [ -f "$marker" ]; then
    tdanet_log "Terms of $name accepted on $(cat "$marker")"
    return 0
  fi
  if [ "${accept_license:-false}" = true ] || [ "${TDANET_ACCEPT_LICENSE:-0}" = 1 ]; then
    tdanet_log "Terms of $name accepted (--accept_license / TDANET_ACCEPT_LICENSE=1)"
  elif [ -t 0 ]; then
    read -r -p "Do you accept the terms of $name above? Type 'yes' to go on: " answer
    [ "$answer" = yes ] || tdanet_die "terms of $name not accepted: nothing downloaded"
  else
    tdanet_die "the terms of $name (printed above) must be accepted first: re-run with" \
      "--accept_license (or TDANET_ACCEPT_LICENSE=1) once you have read them."
  fi
  mkdir -p "$root"
  date '+%Y-%m-%d %H:%M:%S' >"$marker"
}

# tdanet_abs_dir DIR: create DIR and print its absolute path.
tdanet_abs_dir() {
  mkdir -p "$1"
  (cd "$1" && pwd)
}
