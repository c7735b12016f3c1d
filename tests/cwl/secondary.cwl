cwlVersion: v1.2
class: CommandLineTool
doc: >-
  Prints the secondary files that its input types name and the job does not list: in a
  record field, in an array inside a named record type, and in a default.
requirements:
  SchemaDefRequirement:
    types:
      - name: Sample
        type: record
        fields:
          reads:
            type: File
            secondaryFiles: .idx
          lanes:
            type: File[]
            secondaryFiles:
              - pattern: ^.bai
                required: true
              - .md5?
inputs:
  sample:
    type:
      type: record
      fields:
        main: Sample
        label: string
  reference:
    type: File
    secondaryFiles: $(self.nameroot).dict
    default:
      class: File
      location: secondary-ref.fa
baseCommand: cat
arguments:
  - $(inputs.sample.main.reads.secondaryFiles[0].path)
  - $(inputs.sample.main.lanes[0].secondaryFiles[0].path)
  - $(inputs.sample.main.lanes[1].secondaryFiles[0].path)
  - $(inputs.reference.secondaryFiles[0].path)
stdout: found.txt
outputs:
  found: stdout
