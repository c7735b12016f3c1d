cwlVersion: v1.2
class: CommandLineTool
doc: Writes `bytes` zero bytes to its output, to fill a disk.
baseCommand: [head, -c]
inputs:
  bytes:
    type: int
    inputBinding: {position: 1}
arguments:
  - {position: 2, valueFrom: /dev/zero}
stdout: filler.bin
outputs:
  filler: {type: stdout}
