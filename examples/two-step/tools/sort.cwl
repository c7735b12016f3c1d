cwlVersion: v1.2
class: CommandLineTool
baseCommand: sort
inputs:
  input:
    type: File
    inputBinding:
      position: 1
stdout: sorted.txt
outputs:
  sorted:
    type: stdout
