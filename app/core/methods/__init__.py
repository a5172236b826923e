"""The generation methods: Self-Instruct, Evol-Instruct (and its elimination rules), Magpie,
persona-driven and topic-tree generation, with what they share: the prompt files, the reply
parsers, structured replies, the candidate records and the concurrent candidate loop.

Why one package: a method is read and changed as a whole (its prompts, its parser, its rules);
the job kinds that run them live in `app.core.jobs`, the filters in `app.core.filters`.
"""
