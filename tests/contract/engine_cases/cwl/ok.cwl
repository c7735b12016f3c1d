cwlVersion: v1.2
class: CommandLineTool
doc: Writes a greeting to a file, the run's one output.
baseCommand: [sh, -c]
arguments: ['echo "hello $0" > greeting.txt', $(inputs.name)]
inputs:
  name: string
outputs:
  greeting:
    type: File
    outputBinding:
      glob: greeting.txt
