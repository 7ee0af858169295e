"""The revisions, one file each (v<NNNN>_<slug>.py), in order of their ids."""
