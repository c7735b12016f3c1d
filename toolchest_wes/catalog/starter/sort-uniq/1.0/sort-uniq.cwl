#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: Sort the lines of a text file and count each distinct line, into unique.txt.
requirements:
  ShellCommandRequirement: {}
baseCommand: []
arguments:
  - sort
  - $(inputs.input.path)
  - {valueFrom: "|", shellQuote: false}
  - uniq
  - -c
stdout: unique.txt
inputs:
  input:
    type: File
    doc: The text file to sort.
outputs:
  unique:
    type: stdout
    doc: unique.txt, each distinct line once with its count.
