#!/bin/bash
# Stand-ins for the devstack helpers devstack/lib/nova-ha calls, small but
# with devstack's semantics (functions-common, inc/ini-config, inc/python):
#
# - iniset FILE SECTION OPTION VALUE: creates the file and the section (at
#   the end) when missing; replaces the option's first line in the section,
#   or adds it right after the section header.
# - iniget FILE SECTION OPTION: the option's value in that section (empty
#   when absent).
# - iniget_multiline FILE SECTION OPTION: every value of a repeated option,
#   space separated.
# - iniset_multiline FILE SECTION OPTION V...: replaces every line of the
#   option by one line per value, in order.
# - iniadd FILE SECTION OPTION V...: appends values to a repeated option.
# - is_service_enabled / enable_service: ENABLED_SERVICES, a comma list;
#   several names are OR'ed; enable_service skips DISABLED_SERVICES (what
#   local.conf's disable_service named before the plugin's settings ran).
# - run_process NAME COMMAND GROUP USER ENV: devstack refuses commands that
#   are not absolute paths or contain "sudo" (systemd units); here the
#   command is recorded in $STUB_RUN_LOG and, when NAME matches the glob
#   $STUB_RUN_MATCH, started in the background with ENV (pid and output in
#   $STUB_PID_DIR/NAME.pid, NAME.log).
# - stop_process NAME: stops what run_process started, if enabled.
# - die: message on stderr, exit 1.
# -sudo flags are accepted and ignored: tests write only their own files.

_STUB_INI_AWK='
function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t]+$/, "", s); return s }
function is_header(line) { return line ~ /^\[[^]]*\][ \t]*$/ }
function header_name(line) { sub(/^\[/, "", line); sub(/\][ \t]*$/, "", line); return line }
function is_opt(line,    k) {
    if (line !~ /=/) return 0
    k = line; sub(/=.*/, "", k)
    return trim(k) == opt && line !~ /^[ \t]*[#;]/
}
'

function _stub_ini_strip_sudo {
    if [[ "$1" == "-sudo" ]]; then
        return 0
    fi
    return 1
}

# _stub_replace FILE: FILE.stub.tmp's text into FILE, keeping FILE's mode
# (as sed -i does)
function _stub_replace {
    cat "$1.stub.tmp" > "$1"
    rm -f "$1.stub.tmp"
}

function iniget {
    _stub_ini_strip_sudo "$1" && shift
    local file=$1 section=$2 option=$3
    [[ -f "$file" ]] || return 0
    awk -v sec="$section" -v opt="$option" "$_STUB_INI_AWK"'
        is_header($0) { in_sec = (header_name($0) == sec); next }
        in_sec && is_opt($0) { v = $0; sub(/^[^=]*=/, "", v); print trim(v); exit }
    ' "$file"
}

function iniget_multiline {
    _stub_ini_strip_sudo "$1" && shift
    local file=$1 section=$2 option=$3
    [[ -f "$file" ]] || return 0
    awk -v sec="$section" -v opt="$option" "$_STUB_INI_AWK"'
        is_header($0) { in_sec = (header_name($0) == sec); next }
        in_sec && is_opt($0) { v = $0; sub(/^[^=]*=/, "", v); out = out (n++ ? " " : "") trim(v) }
        END { if (n) print out }
    ' "$file"
}

# _stub_ini_write FILE SECTION OPTION VALUE... : drop the option's lines in
# SECTION and put one line per VALUE right after the header (the section
# is appended when missing); with no VALUE the option is only removed.
function _stub_ini_write {
    local file=$1 section=$2 option=$3
    shift 3
    local values
    values=$(printf '%s\n' "$@")
    [[ -f "$file" ]] || : > "$file"
    if ! grep -q "^\[$section\][[:space:]]*$" "$file"; then
        printf '\n[%s]\n' "$section" >> "$file"
    fi
    awk -v sec="$section" -v opt="$option" -v vals="$values" -v nvals="$#" "$_STUB_INI_AWK"'
        BEGIN { split(vals, v, "\n") }
        is_header($0) {
            in_sec = (header_name($0) == sec); print
            if (in_sec && !done) { for (i = 1; i <= nvals; i++) print opt " = " v[i]; done = 1 }
            next
        }
        in_sec && is_opt($0) { next }
        { print }
    ' "$file" > "$file.stub.tmp" && _stub_replace "$file"
}

function iniset {
    _stub_ini_strip_sudo "$1" && shift
    local file=$1 section=$2 option=$3 value=$4
    [[ -n "$section" && -n "$option" ]] || return 0
    if [[ -f "$file" ]] && awk -v sec="$section" -v opt="$option" "$_STUB_INI_AWK"'
            is_header($0) { in_sec = (header_name($0) == sec); next }
            in_sec && is_opt($0) { found = 1 }
            END { exit !found }' "$file"; then
        # replace the first line in place, keep the others' positions
        awk -v sec="$section" -v opt="$option" -v val="$value" "$_STUB_INI_AWK"'
            is_header($0) { in_sec = (header_name($0) == sec); print; next }
            in_sec && is_opt($0) && !done { k = $0; sub(/[ \t]*=.*/, "", k); print k " = " val; done = 1; next }
            { print }
        ' "$file" > "$file.stub.tmp" && _stub_replace "$file"
    else
        _stub_ini_write "$file" "$section" "$option" "$value"
    fi
}

function iniset_multiline {
    _stub_ini_strip_sudo "$1" && shift
    local file=$1 section=$2 option=$3
    shift 3
    _stub_ini_write "$file" "$section" "$option" "$@"
}

function iniadd {
    _stub_ini_strip_sudo "$1" && shift
    local file=$1 section=$2 option=$3
    shift 3
    local -a old
    read -r -a old <<< "$(iniget_multiline "$file" "$section" "$option")"
    _stub_ini_write "$file" "$section" "$option" "${old[@]}" "$@"
}

function is_service_enabled {
    local service
    for service in "$@"; do
        [[ ",$ENABLED_SERVICES," == *",$service,"* ]] && return 0
    done
    return 1
}

function enable_service {
    local service
    for service in "$@"; do
        # what local.conf disabled (disable_service) stays disabled
        [[ ",${DISABLED_SERVICES:-}," == *",$service,"* ]] && continue
        is_service_enabled "$service" || ENABLED_SERVICES="${ENABLED_SERVICES:+$ENABLED_SERVICES,}$service"
    done
}

function define_plugin { :; }
function plugin_requires { :; }
function echo_summary { echo "$@"; }

function get_python_exec_prefix {
    echo "$STUB_BIN_DIR"
}

function die {
    shift
    echo "die: $*" >&2
    exit 1
}

function run_process {
    local name=$1 command=$2 env_vars=${5:-}
    is_service_enabled "$name" || return 0
    if [[ "$command" != /* || "$command" == *sudo* ]]; then
        die $LINENO "run_process $name: devstack refuses '$command'"
    fi
    printf '%s\t%s\t%s\n' "$name" "$command" "$env_vars" >> "$STUB_RUN_LOG"
    # shellcheck disable=SC2053  # STUB_RUN_MATCH is a glob
    if [[ -n "${STUB_RUN_MATCH:-}" && "$name" == $STUB_RUN_MATCH ]]; then
        local -a envs cmd
        read -r -a envs <<< "$env_vars"
        read -r -a cmd <<< "$command"
        env "${envs[@]}" "${cmd[@]}" > "$STUB_PID_DIR/$name.log" 2>&1 &
        echo $! > "$STUB_PID_DIR/$name.pid"
    fi
}

function stop_process {
    local name=$1
    is_service_enabled "$name" || return 0
    printf 'stop\t%s\n' "$name" >> "$STUB_RUN_LOG"
    if [[ -f "$STUB_PID_DIR/$name.pid" ]]; then
        kill "$(cat "$STUB_PID_DIR/$name.pid")" 2> /dev/null || true
        rm -f "$STUB_PID_DIR/$name.pid"
    fi
}
