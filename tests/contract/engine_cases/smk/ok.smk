# Writes a greeting to a file, the run's one output.
rule greet:
    output:
        "greeting.txt",
    shell:
        "echo 'hello {config[name]}' > {output}"
