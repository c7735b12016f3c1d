cwlVersion: v1.2
class: CommandLineTool
doc: Prints the name and the content of each input file as the tool sees them.
baseCommand: [sh, -c, 'for f; do printf "%s " "${f##*/}"; cat "$f"; done', names]
inputs:
  first:
    type: File
    inputBinding: {position: 1}
  more:
    type: File[]
    inputBinding: {position: 2}
stdout: names.txt
outputs:
  names: stdout
