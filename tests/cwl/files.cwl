cwlVersion: v1.2
class: CommandLineTool
doc: Lists a Directory input and copies a File with its secondaryFiles.
requirements:
  InitialWorkDirRequirement:
    listing:
      - entry: $(inputs.data)
  InlineJavascriptRequirement: {}
baseCommand: [sh, -c]
arguments:
  - ls $(inputs.folder.path) | sort > listing.txt; cat $(inputs.data.path) $(inputs.data.secondaryFiles[0].path) > joined.txt; mkdir -p result/sub; cp listing.txt result/sub/
inputs:
  folder: Directory
  data:
    type: File
    secondaryFiles: [.idx]
outputs:
  listing:
    type: File
    outputBinding: {glob: listing.txt}
  joined:
    type: File
    outputBinding: {glob: joined.txt}
  result:
    type: Directory
    outputBinding: {glob: result}
