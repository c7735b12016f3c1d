cwlVersion: v1.2
class: CommandLineTool
baseCommand: sleep
inputs:
  seconds:
    type: int
    default: 600
    inputBinding:
      position: 1
outputs: []
