cwlVersion: v1.2
class: CommandLineTool
doc: Writes its output into the output folder that only its container has.
requirements:
  DockerRequirement:
    dockerPull: debian:stable-slim
    dockerOutputDirectory: /output
  ShellCommandRequirement: {}
arguments:
  - {shellQuote: false, valueFrom: "echo hello > /output/out.txt"}
inputs: []
outputs:
  out:
    type: File
    outputBinding: {glob: out.txt}
