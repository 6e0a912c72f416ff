DROP TABLE scheduler_offsets;
DROP TABLE scheduler_timers;
