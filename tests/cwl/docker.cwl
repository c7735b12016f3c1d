cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement:
    dockerPull: debian:stable-slim
baseCommand: echo
arguments: [in-a-container-or-not]
stdout: out.txt
inputs: []
outputs:
  out: stdout
