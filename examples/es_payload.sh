#!/bin/sh
# An event-processing payload in POSIX sh: the event-range channel is language-neutral (docs/eventservice-channel.rst).
#
# Started by the pilot with PILOT_EVENTRANGECHANNEL set, it connects with socat, which runs this same script again
# ("--worker") with its standard input reading the pilot's answers and its standard output writing to the pilot.
# The worker asks for ranges, writes out_<eventRangeID>.txt per range (the reference payload's format) and reports
# each one finished, until "No more events". Logs go to standard error. (socat reads commas and colons in an
# address as its own syntax: the channel's path and this script's path must hold neither, nor spaces.)
set -eu

if [ "${1:-}" != --worker ]; then
    : "${PILOT_EVENTRANGECHANNEL:?not set: this payload needs an event-service pilot}"
    exec socat "UNIX-CONNECT:$PILOT_EVENTRANGECHANNEL" "EXEC:/bin/sh $0 --worker"
fi

log() { printf 'es_payload: %s\n' "$*" >&2; }

# field NAME OBJECT: the value of key NAME in a one-line JSON object of plain strings and numbers.
field() {
    printf '%s\n' "$2" | sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\{0,1\}\([^\",}]*\).*/\1/p"
}

process() {  # process OBJECT: write the range's output file and report it finished
    id=$(field eventRangeID "$1")
    first=$(field startEvent "$1")
    last=$(field lastEvent "$1")
    started=$(date +%s)
    out="$PWD/out_$id.txt"
    {
        printf 'range %s\nLFN %s\nevents %s..%s\n' "$id" "$(field LFN "$1")" "$first" "$last"
        n=$first
        while [ "$n" -le "$last" ]; do
            printf 'event %s\n' "$n"
            n=$((n + 1))
        done
    } > "$out"
    printf '%s,ID:%s,CPU:0,WALL:%s\n' "$out" "$id" $(($(date +%s) - started))
    log "range $id done"
}

while :; do
    printf 'Ready for events\n'
    IFS= read -r answer || { log "the pilot closed the channel"; exit 1; }
    case $answer in
        "No more events") log "no more events"; exit 0 ;;
        "["*"]") ;;
        *) log "not an answer of the channel: $answer"; exit 1 ;;
    esac
    # One range object per line: a range holds no braces of its own.
    printf '%s\n' "$answer" | tr '{' '\n' | grep eventRangeID | while IFS= read -r object; do
        process "$object"
    done
done
