"""Running sweep entries in worker processes: on this host (`local`, `-j N`) or on a Ray cluster
(`cluster`, `--cluster ray`). Both run the same entry function (`worker.run_entry`) in warm
workers (torch, ttnn and the device opened once, then K entries) and hand its outcome back to the
driver (`fxport.sweep`), which writes the documents."""
