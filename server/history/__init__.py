"""The history explorer: a Perspective virtual server whose tables are TDengine supertables."""
