#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: CommandLineTool
doc: The SHA-256 checksum of each input file, into checksums.sha256.
requirements:
  InitialWorkDirRequirement:
    listing: $(inputs.inputs)
  InlineJavascriptRequirement: {}
baseCommand: sha256sum
stdout: checksums.sha256
inputs:
  inputs:
    type: File[]
    doc: The files to checksum.
    inputBinding:
      position: 1
      valueFrom: $(self.map(function(f) { return f.basename; }))
outputs:
  checksums:
    type: stdout
    doc: checksums.sha256, one line per file (digest, name), as sha256sum -c reads it.
