#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: Print a message into hello.txt.
baseCommand: echo
stdout: hello.txt
inputs:
  message:
    type: string
    default: Hello, world
    doc: The message to print.
    inputBinding:
      position: 1
outputs:
  greeting:
    type: stdout
    doc: hello.txt, holding the message.
