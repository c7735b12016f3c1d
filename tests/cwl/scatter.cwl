cwlVersion: v1.2
class: Workflow
doc: Scatter over words, a subworkflow, an ExpressionTool and JavaScript.
requirements:
  ScatterFeatureRequirement: {}
  SubworkflowFeatureRequirement: {}
  InlineJavascriptRequirement: {}
  StepInputExpressionRequirement: {}
inputs:
  words: string[]
outputs:
  files:
    type: File[]
    outputSource: each/out
  total:
    type: int
    outputSource: count/total
steps:
  each:
    run:
      class: Workflow
      inputs:
        word: string
      outputs:
        out:
          type: File
          outputSource: say/out
      steps:
        say:
          run:
            class: CommandLineTool
            baseCommand: echo
            inputs:
              word:
                type: string
                inputBinding: {position: 1, valueFrom: $(self.toUpperCase())}
            stdout: $(inputs.word).txt
            outputs:
              out: stdout
          in: {word: word}
          out: [out]
    scatter: word
    in: {word: words}
    out: [out]
  count:
    run:
      class: ExpressionTool
      inputs:
        files: File[]
      outputs:
        total: int
      expression: "${ return {'total': inputs.files.length}; }"
    in: {files: each/out}
    out: [total]
