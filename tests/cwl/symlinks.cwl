cwlVersion: v1.2
class: CommandLineTool
doc: >-
  Makes symbolic links that point outside its output folder (to the file and the folder
  named by the inputs), one that points inside it, and ordinary files.
baseCommand: [sh, -c]
arguments:
  - >-
    echo inside > ok.txt &&
    ln -s "$0" leak.txt &&
    ln -s "$1" dir-link &&
    mkdir folder &&
    echo deep > folder/deep.txt &&
    ln -s "$0" folder/leak.txt &&
    ln -s "$1" folder/dir-link &&
    ln -s deep.txt folder/inside-link.txt
  - $(inputs.secret_file)
  - $(inputs.secret_dir)
inputs:
  secret_file: string
  secret_dir: string
outputs:
  ok:
    type: File
    outputBinding: {glob: ok.txt}
  leak:
    type: File?
    outputBinding: {glob: leak.txt}
  linked_dir:
    type: Directory?
    outputBinding: {glob: dir-link}
  folder:
    type: Directory
    outputBinding: {glob: folder}
