cwlVersion: v1.2
class: CommandLineTool
doc: >-
  Stages a file at an absolute path, which CWL v1.2 allows only inside the container that
  its DockerRequirement asks for.
requirements:
  DockerRequirement:
    dockerPull: debian:stable-slim
  InitialWorkDirRequirement:
    listing:
      - entryname: $(inputs.target)
        entry: staged outside the working directory
baseCommand: cat
arguments: [$(inputs.target)]
inputs:
  target: string
outputs: []
