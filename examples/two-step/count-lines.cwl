#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
doc: Sort the lines of a file, then count the unique ones.
inputs:
  text:
    type: File
outputs:
  sorted:
    type: File
    outputSource: sort/sorted
  count:
    type: File
    outputSource: tally/count
steps:
  sort:
    run: tools/sort.cwl
    in:
      input: text
    out: [sorted]
  tally:
    run: tools/count-unique.cwl
    in:
      input: sort/sorted
    out: [count]
