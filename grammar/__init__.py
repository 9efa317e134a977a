"""The syntax of the `.mt` language: `mtdsl.lark`, loaded as package data."""
