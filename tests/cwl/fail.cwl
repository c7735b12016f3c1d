cwlVersion: v1.2
class: CommandLineTool
doc: Writes to stderr, then fails.
baseCommand: [sh, -c]
arguments: ["echo 'something went wrong' >&2; exit 3"]
inputs: []
outputs: []
