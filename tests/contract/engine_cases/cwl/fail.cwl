cwlVersion: v1.2
class: CommandLineTool
doc: Says what went wrong on stderr, then exits 3.
baseCommand: [sh, -c]
arguments: ["echo 'contract failure' >&2; exit 3"]
inputs: []
outputs: []
