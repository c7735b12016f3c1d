cwlVersion: v1.2
class: CommandLineTool
baseCommand: sleep
inputs:
  seconds:
    type: int
    inputBinding:
      position: 1
outputs: []
