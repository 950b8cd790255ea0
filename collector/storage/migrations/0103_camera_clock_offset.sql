-- A camera's clock offset from its recording server, in seconds (positive = ahead), as
-- of the last change written for the camera; NULL = not measured.
ALTER TABLE cameras ADD COLUMN clock_offset_s DOUBLE PRECISION;
