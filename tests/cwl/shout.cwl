cwlVersion: v1.2
class: CommandLineTool
doc: Echo without capturing stdout, so the task's own stdout log has the text.
baseCommand: echo
inputs:
  word:
    type: string
    default: ahoy
    inputBinding:
      position: 1
outputs: []
