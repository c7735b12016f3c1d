cwlVersion: v1.2
class: CommandLineTool
baseCommand: uniq
arguments: ["-c"]
inputs:
  input:
    type: File
    inputBinding:
      position: 1
stdout: counts.txt
outputs:
  count:
    type: stdout
