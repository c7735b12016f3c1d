rule nap:
    output:
        "rested.txt",
    shell:
        "sleep {config[seconds]}; touch {output}"
