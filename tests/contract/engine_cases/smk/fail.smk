# Says what went wrong on stderr, then exits 3.
rule fail:
    output:
        "never.txt",
    shell:
        "echo 'contract failure' >&2; exit 3"
