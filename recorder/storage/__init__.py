"""Storage: access units to files on disk. PTS interleaving, the fragmented-MP4 muxer
(``_mux_c`` and its pure twin ``_mux_py``), the segment writer and the recording with its
recovery after a crash. Imports only earlier layers."""
