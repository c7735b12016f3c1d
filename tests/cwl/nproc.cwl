cwlVersion: v1.2
class: CommandLineTool
requirements:
  InlineJavascriptRequirement: {}
baseCommand: nproc
inputs: []
outputs:
  cores:
    type: string
    outputBinding:
      glob: nproc.txt
      loadContents: true
      outputEval: $(self[0].contents.trim())
stdout: nproc.txt
